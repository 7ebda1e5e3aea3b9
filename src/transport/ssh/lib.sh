# Prepended to the scripts that report per object or sweep (see scripts.rs).

# A per-object refusal on stderr: `ccsync-skip TAB object TAB kind TAB
# detail`, tabs and newlines in the detail made spaces.
skip() {
  printf 'ccsync-skip\t%s\t%s\t%s\n' "$1" "$2" "$(printf '%s' "$3" | tr '\t\n' '  ')" >&2
}

# Leftover temp dirs, at the sync dir's top only: machine $1's at once (it
# runs one ccsync at a time, so they are a killed run's), others' after an
# hour (that machine may be sending right now). Exactly eight characters
# after the name, as mktemp makes them, so `laptop` never takes
# `laptop-2`'s. find without -L never enters a link; rm -rf on a link
# removes the link.
sweep() {
  if [ -n "$1" ]; then
    find . -mindepth 1 -maxdepth 1 -name ".ccsync-$1-????????" -exec rm -rf -- {} + 2>/dev/null
  fi
  find . -mindepth 1 -maxdepth 1 -name '.ccsync-*' -mmin +60 -exec rm -rf -- {} + 2>/dev/null
}
