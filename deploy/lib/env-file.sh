# shellcheck shell=bash
# Env files (KEY=VALUE lines, as sc-gateway.service's EnvironmentFile= reads them), written and
# read by deploy/install-gateway.sh without ever evaluating them: a value is never run by the
# shell, whoever wrote the file. Sourced by the installer; tests/gateway/test_env_file_sh.py
# runs these functions on crafted files.

# env_value VALUE: VALUE as gateway/claim.py's `_env_value` writes it: bare when it has only
# letters, digits and _.:/@+-,= ; otherwise in double quotes with \ " $ ` escaped by a
# backslash (what systemd and bash both read back as VALUE). A line break is refused.
env_value() {
    local value="$1"
    if [[ "$value" == *$'\n'* || "$value" == *$'\r'* ]]; then
        echo "a value of an env file has a line break" >&2
        return 1
    fi
    if [[ "$value" =~ ^[A-Za-z0-9_.:/@+,=-]*$ ]]; then
        printf '%s' "$value"
        return 0
    fi
    value="${value//\\/\\\\}"
    value="${value//\"/\\\"}"
    value="${value//\$/\\\$}"
    value="${value//\`/\\\`}"
    printf '"%s"' "$value"
}

# unescape TEXT: TEXT with each backslash dropped and the character after it kept.
unescape() {
    local text="$1" out="" i=0 c
    while ((i < ${#text})); do
        c="${text:i:1}"
        if [[ "$c" == "\\" ]]; then
            i=$((i + 1))
            c="${text:i:1}"
        fi
        out+="$c"
        i=$((i + 1))
    done
    printf '%s' "$out"
}

# read_env_file FILE KEY...: set the shell variables KEY... (and only those) from FILE's
# KEY=VALUE lines; a later line wins. Values are bare, 'single-quoted' or "double-quoted"
# with \\ \" \$ \` escapes (env_value's output). Comments, blank lines and other keys are
# skipped; a line for one of KEY... that is not in that form stops with an error (status 1)
# naming the line: nothing in it is expanded or run.
read_env_file() {
    local file="$1" line key value number=0 wanted k
    shift
    local bare='^[^[:space:]"'"'"'\\$`]*$'
    local single="^'([^']*)'\$"
    # shellcheck disable=SC2016  # a regular expression: $ and ` are meant literally
    local double='^"(([^"\\$`]|\\[\\"$`])*)"$'
    while IFS= read -r line || [[ -n "$line" ]]; do
        number=$((number + 1))
        line="${line%$'\r'}"
        [[ "$line" =~ ^[[:space:]]*([#\;].*)?$ ]] && continue
        [[ "$line" =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
        key="${BASH_REMATCH[1]}"
        value="${BASH_REMATCH[2]}"
        wanted=0
        for k in "$@"; do
            [[ "$k" == "$key" ]] && wanted=1
        done
        [[ $wanted -eq 1 ]] || continue
        if [[ "$value" =~ $double ]]; then
            value="$(unescape "${BASH_REMATCH[1]}")"
        elif [[ "$value" =~ $single ]]; then
            value="${BASH_REMATCH[1]}"
        elif ! [[ "$value" =~ $bare ]]; then
            echo "$file:$number: $key: not a plain or quoted value (nothing of it is run)" >&2
            return 1
        fi
        printf -v "$key" '%s' "$value"
    done <"$file"
}
