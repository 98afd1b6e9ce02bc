"""Where the device model and board profile files are: one `firmware_configs/` folder, with
`models/{name}.yaml` (`contract.devices`) and `profiles/{name}.yaml` (`contract.profiles`).

The gateway, the cloud and the tests each name a model or a profile by its file name without
`.yaml`; this is the one place that turns a name into its file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from contract.devices import DeviceModelBase, load_model
from contract.profiles import Profile, load_profile

#: The repository's `firmware_configs/` folder (models/, profiles/, rules/, sites/).
CONFIGS_DIR = Path(__file__).resolve().parent.parent / "firmware_configs"


@dataclass(frozen=True)
class Catalogue:
    """The device models and board profiles under one folder (by default the repository's)."""

    root: Path = CONFIGS_DIR

    @classmethod
    def at(cls, folder: Path | str | None) -> Catalogue:
        """The catalogue under `folder`; the repository's when None."""
        return cls() if folder is None else cls(Path(folder))

    def model_path(self, name: str) -> Path:
        return self.root / "models" / f"{name}.yaml"

    def profile_path(self, name: str) -> Path:
        return self.root / "profiles" / f"{name}.yaml"

    def model_names(self) -> list[str]:
        return sorted(p.stem for p in (self.root / "models").glob("*.yaml"))

    def profile_names(self) -> list[str]:
        return sorted(p.stem for p in (self.root / "profiles").glob("*.yaml"))

    def model(self, name: str) -> DeviceModelBase:
        """Read a model file (ConfigFileError naming the file and field if it is bad)."""
        return load_model(self.model_path(name))

    def profile(self, name: str) -> Profile:
        """Read a profile file (ConfigFileError naming the file and field if it is bad)."""
        return load_profile(self.profile_path(name))
