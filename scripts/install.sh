#!/usr/bin/env bash
# `make install`: acp on PATH, with its shell completions and manual page
# where the shells and `man` find them (both read <prefix>/share beside a
# <prefix>/bin on PATH). PREFIX defaults to ~/.cargo, whose bin/ rustup puts
# on PATH; `sudo make install PREFIX=/usr/local` installs for everyone.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${PREFIX:-$HOME/.cargo}
cargo install --locked --path . --root "$prefix"
acp="$prefix/bin/acp"
share="$prefix/share"
mkdir -p "$share/bash-completion/completions" "$share/zsh/site-functions" \
    "$share/fish/vendor_completions.d" "$share/man/man1"
"$acp" completions bash >"$share/bash-completion/completions/acp"
"$acp" completions zsh >"$share/zsh/site-functions/_acp"
"$acp" completions fish >"$share/fish/vendor_completions.d/acp.fish"
"$acp" man >"$share/man/man1/acp.1"
echo "installed $acp"
echo "completions: $share/{bash-completion/completions,zsh/site-functions,fish/vendor_completions.d}"
echo "manual: $share/man/man1/acp.1 (man acp)"
case ":$PATH:" in
    *":$prefix/bin:"*) ;;
    *) echo "note: $prefix/bin is not on PATH: add it (export PATH=\"$prefix/bin:\$PATH\")" ;;
esac
