"""Password hashes: what counts as one when a bootstrap account is given its hash."""

from __future__ import annotations

from cloud.access.passwords import hash_password, is_hash, verify_password


def test_a_hash_is_recognised_and_verifies_its_password() -> None:
    hashed = hash_password("night-shift-2027")
    assert is_hash(hashed)
    assert verify_password("night-shift-2027", hashed)
    assert not verify_password("night-shift-2028", hashed)


def test_passwords_that_merely_look_like_hashes_are_passwords() -> None:
    hashed = hash_password("x" * 10)
    for text in (
        "scrypt$",
        "scrypt$16384$8$1$abc$def",  # salt and digest too short
        hashed.upper(),  # hex is lower case
        hashed + "0",
        " " + hashed,
        hashed.replace("scrypt", "bcrypt"),
    ):
        assert not is_hash(text), text
