#!/usr/bin/env bash
# The light install: `pip install '.[serve]'` without the train extra (no PyTorch) into a fresh
# venv, then, offline, `digitrec predict` on the example photos (a digit, a number: the shipped
# model and verifier) and a prediction from `digitrec serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/light"
py="$tmp/light/bin/python"
"$py" -m pip install -q --upgrade pip
"$py" -m pip install -q ".[serve]"
if "$py" -c "import torch" 2>/dev/null; then
  echo "light install: torch was installed, but it should not be" >&2
  exit 1
fi
answer="$("$tmp/light/bin/digitrec" predict docs/examples/digit.jpg --json)"
echo "light install, digitrec predict: $answer"
echo "$answer" | "$py" -c 'import json, sys; assert json.load(sys.stdin)["digit"] == 6'
number="$("$tmp/light/bin/digitrec" predict docs/examples/number.jpg --multi --json)"
echo "light install, digitrec predict --multi: $number"
echo "$number" | "$py" -c 'import json, sys; assert json.load(sys.stdin)["number"] == "21041"'

port="$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$tmp/light/bin/digitrec" serve --port "$port" >"$tmp/serve.log" 2>&1 &
server=$!
"$py" - "$port" <<'PY'
import json, sys, time, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
for _ in range(300):
    try:
        urllib.request.urlopen(base + "/readyz", timeout=1)
        break
    except OSError:
        time.sleep(0.1)
with open("docs/examples/digit.jpg", "rb") as f:
    request = urllib.request.Request(base + "/v1/predict", data=f.read(),
                                     headers={"content-type": "image/jpeg"})
answer = json.load(urllib.request.urlopen(request, timeout=30))
print("light install, digitrec serve:", {k: answer[k] for k in ("digit", "confidence")})
assert answer["digit"] == 6
PY
