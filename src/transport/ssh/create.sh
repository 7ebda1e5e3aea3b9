# CREATE (init): makes the sync dir, private, and checks it can be written.
# $1: the sync dir, $2: this machine's name.
umask 077
mkdir -p -- "$1" || exit 4
cd -- "$1" && t=$(mktemp "./.ccsync-$2-XXXXXXXX") && rm -f -- "$t" || exit 4
