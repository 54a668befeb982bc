#!/bin/sh
# Build the peers' venv for `make bench`: bench/peers/install.sh VENV PYTHON
#
# All peers in one resolve of requirements.txt; if that fails, each peer alone under the same pins,
# so that one which cannot install leaves the others (the bench reports it as unavailable, with the
# import error, and goes on). The stamp VENV/.installed is written only when everything installed,
# so the next `make bench` tries again.
set -u
venv=$1
python=$2
here=$(dirname "$0")
requirements="$here/requirements.txt"

test -x "$venv/bin/python" || "$python" -m venv "$venv" || exit 1
pip="$venv/bin/pip"
"$pip" install --quiet --upgrade pip || echo "warning: could not upgrade pip in $venv" >&2
if "$pip" install --quiet -r "$requirements"; then
    touch "$venv/.installed"
    exit 0
fi
echo "warning: the peers did not install together; trying each alone" >&2
for peer in "eventsourcing[postgres]" "autogen-agentchat autogen-ext" \
    "langgraph langgraph-checkpoint-postgres psycopg[binary,pool]" "dbos"; do
    # shellcheck disable=SC2086 # a peer is several packages
    "$pip" install --quiet -c "$requirements" $peer || echo "warning: could not install $peer; it will be unavailable" >&2
done
exit 0
