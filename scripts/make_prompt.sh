#!/bin/sh
# The calm prompt one-key voice plays when nobody has answered yet (docs/voice.md):
# synthesised with Debian's espeak-ng (Mandarin voice `cmn`), deterministic for a given
# espeak-ng version, resampled to 16 kHz mono. A placeholder until a person records it.
#   apt-get install -y espeak-ng && scripts/make_prompt.sh
set -eu
out="${1:-firmware_configs/audio/prompt-zh.wav}"
tmp="$(mktemp --suffix=.wav)"
trap 'rm -f "$tmp"' EXIT
espeak-ng -v cmn -s 140 -w "$tmp" "呼叫已送达值班室，请保持冷静，工作人员马上联系您"
python3 - "$tmp" "$out" <<'PY'
import sys
import av
src, dst = sys.argv[1:]
resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
with av.open(src) as inp, av.open(dst, "w", format="wav") as out:
    stream = out.add_stream("pcm_s16le", rate=16000, layout="mono")
    for frame in inp.decode(audio=0):
        for f in resampler.resample(frame):
            out.mux(stream.encode(f))
    for f in resampler.resample(None):
        out.mux(stream.encode(f))
    out.mux(stream.encode(None))
PY
echo "wrote $out"
