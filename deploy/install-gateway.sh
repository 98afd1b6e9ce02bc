#!/usr/bin/env bash
# Install the gateway agent on a Raspberry Pi (Raspberry Pi OS bookworm, Python 3.11).
#
#   sudo deploy/install-gateway.sh --gateway gw-ld01 --site firmware_configs/sites/demo.yaml \
#        --broker-host broker.community.lan --password-file - [--zigbee] <<<'its-password'
#
# (--password-file FILE reads the gateway's broker password from FILE's first line, `-` from
# stdin; --password PASSWORD works too but shows it in `ps` and the shell's history.)
#
# or, with a one-time claim code from the web app's installer page (docs/provisioning.md):
#
#   sudo deploy/install-gateway.sh --cloud https://cloud.street.lan:8443 --code 7KQM-3XWP \
#        [--cloud-ca /path/to/ca.pem] [--zigbee]
#
# Run it from a checkout of the repository. It is safe to run again (an upgrade): it never
# touches the outbox (/var/lib/smart-community) and keeps an existing gateway.env unless
# --password(-file)/--broker-host are given again.
#
# What it does:
#   1. apt: python3-venv, python3-lgpio (gpiozero's pin library on a Pi 5 / bookworm);
#      with --zigbee also mosquitto (the local broker zigbee2mqtt talks to).
#   2. a system user sc-gateway in the groups gpio, spi, dialout (GPIO, MCP3008, UARTs).
#   3. the code in /opt/smart-community with its own venv (pip install '.[gateway]').
#   4. /etc/smart-community/gateway.env (mode 0640, root:sc-gateway) from the arguments;
#      with --code instead: `python -m gateway claim`, which fetches the gateway's
#      credentials and config over HTTPS: the config into /var/lib/smart-community, the
#      secrets into /etc/smart-community (credentials.json, claimed.env: 0600, root's).
#   5. `python -m gateway check` on the configuration: a bad one stops the install here.
#   6. the systemd unit sc-gateway.service, enabled and (re)started.
#   7. with --zigbee: the local Mosquitto (deploy/zigbee/), loopback only, with accounts
#      zigbee2mqtt and sc-gateway; zigbee2mqtt itself is installed by its own instructions
#      (see deploy/zigbee/zigbee2mqtt-configuration.yaml for the settings it needs).
set -euo pipefail

PREFIX=/opt/smart-community
ETC=/etc/smart-community
STATE=/var/lib/smart-community
USER_NAME=sc-gateway
UNIT=/etc/systemd/system/sc-gateway.service

GATEWAY=""
SITE=""
BROKER_HOST=""
BROKER_PORT=1883
PASSWORD=""
PASSWORD_FILE=""
ZIGBEE=0
NO_START=0
CLOUD=""
CODE=""
CLOUD_CA=""

usage() {
    sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --gateway) GATEWAY="$2"; shift 2 ;;
        --site) SITE="$2"; shift 2 ;;
        --broker-host) BROKER_HOST="$2"; shift 2 ;;
        --broker-port) BROKER_PORT="$2"; shift 2 ;;
        --password) PASSWORD="$2"; shift 2 ;;
        --password-file) PASSWORD_FILE="$2"; shift 2 ;;
        --zigbee) ZIGBEE=1; shift ;;
        --cloud) CLOUD="$2"; shift 2 ;;
        --code) CODE="$2"; shift 2 ;;
        --cloud-ca) CLOUD_CA="$2"; shift 2 ;;
        --no-start) NO_START=1; shift ;;
        -h|--help) usage 0 ;;
        *) echo "unknown argument: $1" >&2; usage 2 ;;
    esac
done

die() { echo "install-gateway: $*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "run as root (sudo)"
if [[ -n "$CODE" ]]; then
    [[ -n "$CLOUD" ]] || die "--code needs --cloud https://HOST:PORT (the cloud's web app)"
    [[ -z "$CLOUD_CA" || -f "$CLOUD_CA" ]] || die "no CA file $CLOUD_CA"
else
[[ -n "$GATEWAY" ]] || die "--gateway is required (this gateway's id in the site file)"
[[ "$GATEWAY" =~ ^[a-z0-9][a-z0-9_-]{0,62}$ ]] || die "bad gateway id: $GATEWAY"
[[ -n "$SITE" ]] || die "--site is required (the site file, e.g. firmware_configs/sites/x.yaml)"
[[ -f "$SITE" ]] || die "no site file $SITE"
fi
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[[ -f "$SRC/pyproject.toml" && -d "$SRC/gateway" ]] || die "run it from the repository ($SRC)"
# env_value, read_env_file: env files written and read without the shell running them
# shellcheck source=deploy/lib/env-file.sh disable=SC1091
. "$SRC/deploy/lib/env-file.sh"
if [[ -n "$PASSWORD_FILE" ]]; then
    [[ -z "$PASSWORD" ]] || die "give --password or --password-file, not both"
    if [[ "$PASSWORD_FILE" == "-" ]]; then
        IFS= read -r PASSWORD || [[ -n "$PASSWORD" ]] || die "no password on stdin"
    else
        [[ -r "$PASSWORD_FILE" ]] || die "cannot read $PASSWORD_FILE"
        IFS= read -r PASSWORD <"$PASSWORD_FILE" || [[ -n "$PASSWORD" ]] \
            || die "no password in $PASSWORD_FILE"
    fi
    PASSWORD="${PASSWORD%$'\r'}"
    [[ -n "$PASSWORD" ]] || die "the password in ${PASSWORD_FILE/#-/stdin} is empty"
elif [[ -n "$PASSWORD" ]]; then
    echo "install-gateway: note: --password shows it in ps and the shell's history;" \
        "--password-file FILE (or - for stdin) does not" >&2
fi

echo "== packages"
apt-get update -qq
apt-get install -y -qq python3-venv python3-lgpio rsync >/dev/null
if [[ $ZIGBEE -eq 1 ]]; then
    apt-get install -y -qq mosquitto mosquitto-clients >/dev/null
fi

echo "== user $USER_NAME"
if ! id -u "$USER_NAME" >/dev/null 2>&1; then
    useradd --system --home-dir "$STATE" --no-create-home --shell /usr/sbin/nologin "$USER_NAME"
fi
for group in gpio spi dialout; do
    if getent group "$group" >/dev/null; then
        usermod -a -G "$group" "$USER_NAME"
    else
        echo "   (no group $group on this system: skipped)"
    fi
done

echo "== code and venv in $PREFIX"
install -d -m 0755 "$PREFIX"
rsync -a --delete --exclude .venv --exclude .git --exclude '__pycache__' \
    --exclude 'bench/.node-red' "$SRC/" "$PREFIX/"
# --system-site-packages: gpiozero finds Debian's lgpio.
if [[ ! -x "$PREFIX/.venv/bin/python" ]]; then
    python3 -m venv --system-site-packages "$PREFIX/.venv"
fi
"$PREFIX/.venv/bin/pip" install -q --upgrade pip
"$PREFIX/.venv/bin/pip" install -q "${PREFIX}[gateway]"

echo "== configuration in $ETC"
install -d -m 0755 "$ETC"
ENV_FILE="$ETC/gateway.env"
if [[ -n "$CODE" ]]; then
    echo "== claiming this gateway at $CLOUD"
    install -d -m 0750 -o "$USER_NAME" -g "$USER_NAME" "$STATE"
    # the state folder is the agent's; the secrets go to root's $ETC (docs/provisioning.md)
    "$PREFIX/.venv/bin/python" -m gateway claim --cloud "$CLOUD" --code "$CODE" \
        ${CLOUD_CA:+--ca-file "$CLOUD_CA"} --state-dir "$STATE" --secrets-dir "$ETC" \
        --configs-dir "$PREFIX/firmware_configs" || die "the claim did not succeed (see above)"
    # the claimed settings; ENV_FILE (if any) stays for what they do not set (e.g. zigbee)
    touch "$ENV_FILE"
    ENV_FILE_CLAIMED="$ETC/claimed.env"
else
SITE_DEST="$ETC/site.yaml"
install -m 0644 "$SITE" "$SITE_DEST"
ENV_FILE="$ETC/gateway.env"
if [[ ! -f "$ENV_FILE" || -n "$PASSWORD" || -n "$BROKER_HOST" ]]; then
    [[ -n "$PASSWORD" ]] || die "--password-file (or --password) is required on the first install"
    [[ -n "$BROKER_HOST" ]] || die "--broker-host is required on the first install"
    [[ "$BROKER_PORT" =~ ^[0-9]{1,5}$ ]] || die "bad --broker-port: $BROKER_PORT"
    # quoted as gateway/claim.py quotes them: read back the same by systemd and bash
    password_value="$(env_value "$PASSWORD")" || die "the password has a line break"
    host_value="$(env_value "$BROKER_HOST")" || die "--broker-host has a line break"
    umask 077
    {
        echo "# written by deploy/install-gateway.sh; see deploy/env/gateway.env.example"
        echo "SC_GW_SITE=$(env_value "$SITE_DEST")"
        echo "SC_GW_GATEWAY=$GATEWAY"
        echo "SC_GW_CONFIGS_DIR=$(env_value "$PREFIX/firmware_configs")"
        echo "SC_GW_BROKER_HOST=$host_value"
        echo "SC_GW_BROKER_PORT=$BROKER_PORT"
        echo "SC_GW_PASSWORD=$password_value"
        echo "SC_GW_OUTBOX=$(env_value "$STATE/outbox.sqlite3")"
    } >"$ENV_FILE.new"
    umask 022
    mv "$ENV_FILE.new" "$ENV_FILE"
fi
fi
chown root:"$USER_NAME" "$ENV_FILE"
chmod 0640 "$ENV_FILE"
install -d -m 0750 -o "$USER_NAME" -g "$USER_NAME" "$STATE"

if [[ $ZIGBEE -eq 1 ]]; then
    echo "== local broker for zigbee2mqtt"
    install -d -m 0755 /etc/mosquitto/sc-local
    install -m 0644 "$SRC/deploy/zigbee/acl" /etc/mosquitto/sc-local/acl
    install -m 0644 "$SRC/deploy/zigbee/mosquitto-local.conf" /etc/mosquitto/conf.d/sc-local.conf
    PASSWD=/etc/mosquitto/sc-local/passwd
    if ! grep -q '^SC_GW_ZIGBEE_PASSWORD=' "$ENV_FILE"; then
        agent_pw="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
        z2m_pw="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
        touch "$PASSWD"
        mosquitto_passwd -b "$PASSWD" sc-gateway "$agent_pw"
        mosquitto_passwd -b "$PASSWD" zigbee2mqtt "$z2m_pw"
        {
            echo "SC_GW_ZIGBEE_HOST=127.0.0.1"
            echo "SC_GW_ZIGBEE_USERNAME=sc-gateway"
            echo "SC_GW_ZIGBEE_PASSWORD=$agent_pw"
        } >>"$ENV_FILE"
        echo "   zigbee2mqtt's broker password (put it in zigbee2mqtt's data/secret.yaml): $z2m_pw"
    fi
    chown root:mosquitto "$PASSWD"
    chmod 0640 "$PASSWD"
    systemctl enable mosquitto >/dev/null
    systemctl restart mosquitto
fi

echo "== checking the configuration"
# read, never sourced: only these keys, nothing in a value is run (deploy/lib/env-file.sh)
SC_GW_SITE="" SC_GW_GATEWAY="" SC_GW_CONFIGS_DIR="" SC_GW_CONFIG_DIR=""
for env_file in "$ENV_FILE" ${ENV_FILE_CLAIMED:+"$ENV_FILE_CLAIMED"}; do
    read_env_file "$env_file" SC_GW_SITE SC_GW_GATEWAY SC_GW_CONFIGS_DIR SC_GW_CONFIG_DIR \
        || die "cannot read $env_file"
done
if [[ -f "$STATE/gateway.env" ]]; then
    echo "   note: $STATE/gateway.env (an earlier claim's) is no longer read by" \
        "sc-gateway.service; the claim now writes $ETC/claimed.env — claim again (--code)"
fi
"$PREFIX/.venv/bin/python" -m gateway check --site "$SC_GW_SITE" --gateway "$SC_GW_GATEWAY" \
    --configs-dir "$SC_GW_CONFIGS_DIR" ${SC_GW_CONFIG_DIR:+--config-dir "$SC_GW_CONFIG_DIR"}

echo "== systemd unit"
install -m 0644 "$SRC/deploy/systemd/sc-gateway.service" "$UNIT"
systemctl daemon-reload
systemctl enable sc-gateway.service >/dev/null
if [[ $NO_START -eq 0 ]]; then
    systemctl restart sc-gateway.service
    sleep 2
    systemctl --no-pager --lines=5 status sc-gateway.service || true
fi
echo "== done: logs with  journalctl -u sc-gateway -f  (one key=value line per record)"
