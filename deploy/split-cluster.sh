#!/bin/sh
# Turns the output of `dwcpd keygen` into one folder per machine.
#
#   dwcpd keygen --nodes 4 --out cluster
#   deploy/split-cluster.sh cluster 10.0.0.1 10.0.0.2 10.0.0.3 10.0.0.4
#
# Node i runs on the i-th address. Writes cluster/host-<i>/ with node.toml,
# node.key (that node's only) and committee.json, laid out for the systemd unit
# (/etc/dwcp/node.toml, store in /var/lib/dwcp). Addresses are IPs or DNS names;
# dwcpd resolves a name each time it dials that peer. The listener binds an IP,
# so a node given by name listens on 0.0.0.0 unless LISTEN_HOST says otherwise.
#
# Environment:
#   CONSENSUS_PORT  consensus port on every machine (7000)
#   HTTP_PORT       HTTP API port on every machine (8000)
#   LISTEN_HOST     address the consensus listener binds: "host" (default) for the
#                   machine's own address as given (0.0.0.0 if it is a name), or
#                   e.g. 0.0.0.0 behind NAT
#   HTTP_HOST       address the HTTP API binds: 127.0.0.1 (default; put a TLS proxy
#                   in front), "host" for the machine's IP (not with names), or 0.0.0.0
#   STORE           path of the redb store (/var/lib/dwcp/node.redb)
#
# http_body_limit and [pbft] are left at their defaults; add them to each
# node.toml if the cluster needs other values.
set -eu

usage() {
    echo "usage: $0 KEYGEN_DIR HOST0 HOST1 ..." >&2
    exit 2
}
fail() {
    echo "split-cluster: $*" >&2
    exit 1
}

[ "$#" -ge 2 ] || usage
dir=$1
shift
n=$#
[ -f "$dir/committee.json" ] || fail "$dir/committee.json not found: run dwcpd keygen --out $dir first"
[ -f "$dir/node-$n.key" ] && fail "$dir has more than $n keys: give one address per node"
[ -f "$dir/node-$((n - 1)).key" ] || fail "$dir has fewer than $n keys: give one address per node"

consensus_port=${CONSENSUS_PORT:-7000}
http_port=${HTTP_PORT:-8000}
listen_host=${LISTEN_HOST:-host}
http_host=${HTTP_HOST:-127.0.0.1}
store=${STORE:-/var/lib/dwcp/node.redb}
token=$(sed -n 's/^http_token = "\(.*\)"$/\1/p' "$dir/node-0.toml")
[ -n "$token" ] || fail "no http_token in $dir/node-0.toml"

# Whether $1 is an IP literal: IPv4 is digits and dots, IPv6 has colons (a host
# name has neither colons nor only digits).
is_ip() {
    case $1 in
        '' | *[!0-9a-fA-F.:]*) return 1 ;;
        *:*) return 0 ;;
        *[!0-9.]*) return 1 ;;
        *) return 0 ;;
    esac
}

# A socket address for an IP literal or a name: IPv6 goes in brackets.
sockaddr() {
    case $1 in
        *:*) echo "[$1]:$2" ;;
        *) echo "$1:$2" ;;
    esac
}

peers=""
for host in "$@"; do
    case $host in
        '' | *[!0-9A-Za-z.:_-]*) fail "'$host' is neither an IP address nor a host name" ;;
    esac
    peers="$peers    \"$(sockaddr "$host" "$consensus_port")\",
"
done

umask 077
i=0
for host in "$@"; do
    out=$dir/host-$i
    mkdir -p "$out"
    listen=$listen_host
    if [ "$listen_host" = host ]; then
        is_ip "$host" && listen=$host || listen=0.0.0.0
    fi
    http=$http_host
    if [ "$http_host" = host ]; then
        is_ip "$host" || fail "HTTP_HOST=host needs IP addresses; '$host' is a name (use 0.0.0.0)"
        http=$host
    fi
    cp "$dir/committee.json" "$out/committee.json"
    cp "$dir/node-$i.key" "$out/node.key"
    cat >"$out/node.toml" <<TOML
# Node $i of $n, on $host. Written by deploy/split-cluster.sh.
id = $i
listen = "$(sockaddr "$listen" "$consensus_port")"
http = "$(sockaddr "$http" "$http_port")"
peers = [
$peers]
committee = "committee.json"
key = "node.key"
store = "$store"
engine = "pbft"
http_token = "$token"
TOML
    echo "$out: node $i for $host"
    i=$((i + 1))
done
