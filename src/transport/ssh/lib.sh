# Prepended to the scripts that report per object or sweep (see scripts.rs).

# A per-object refusal on stderr: `ccsync-skip TAB object TAB kind TAB
# detail`, tabs and newlines in the detail made spaces.
skip() {
  printf 'ccsync-skip\t%s\t%s\t%s\n' "$1" "$2" "$(printf '%s' "$3" | tr '\t\n' '  ')" >&2
}

# Leftover temp dirs, at the sync dir's top only: machine $1's once the
# shell that made it is gone (a killed run's; another ccsync of $1 may be
# storing right now: a hook's push beside its presence update), and any
# after an hour (that machine may be sending right now). A temp dir is
# `.ccsync-NAME@PID-XXXXXXXX` (machine names hold no `@`, so `laptop`'s
# are never `laptop-2`'s); `.ccsync-NAME-XXXXXXXX`, from a ccsync before
# PIDs were in the name, goes at once. find without -L never enters a
# link; rm -rf on a link removes the link.
sweep() {
  if [ -n "$1" ]; then
    for d in ./.ccsync-"$1"@*-????????; do
      if [ -L "$d" ] || [ ! -d "$d" ]; then continue; fi
      p=${d#./.ccsync-"$1"@}
      p=${p%-????????}
      case $p in '' | *[!0-9]*) continue ;; esac
      if [ "$p" = "$$" ] || kill -0 "$p" 2>/dev/null; then continue; fi
      rm -rf -- "$d"
    done
    find . -mindepth 1 -maxdepth 1 -name ".ccsync-$1-????????" -exec rm -rf -- {} + 2>/dev/null
  fi
  find . -mindepth 1 -maxdepth 1 -name '.ccsync-*' -mmin +60 -exec rm -rf -- {} + 2>/dev/null
}
