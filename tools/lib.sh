# Shared by the tools/ scripts (sourced, not run).

# ensure_packages CMD_OR_PKG...: install Debian packages that are missing.
# An argument "pkg" is checked with dpkg; "cmd:pkg" by the command's
# presence.
ensure_packages() {
    local missing=() arg cmd pkg
    for arg in "$@"; do
        if [[ $arg == *:* ]]; then
            cmd=${arg%%:*}
            pkg=${arg#*:}
            command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
        else
            dpkg -s "$arg" >/dev/null 2>&1 || missing+=("$arg")
        fi
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "$(basename "$0"): installing ${missing[*]} from Debian's packages" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}
