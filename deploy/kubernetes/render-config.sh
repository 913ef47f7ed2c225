#!/bin/sh
# Init step of a dwcpd pod: writes /etc/dwcp/node.toml for this pod's ordinal and
# copies this pod's key (only its own) out of the all-keys Secret.
#
# dwcpd's `peers` are socket addresses (IP:port), not DNS names, and a node dials
# those addresses for as long as it runs. A pod's own IP changes whenever it is
# recreated, so the peers listed here are the ClusterIPs of the per-ordinal
# Services dwcp-peer-<i> (services.yaml): stable for the life of the Service,
# whichever pod IP is behind them. This script resolves those names and waits
# until every one resolves before writing the config.
#
# Environment (set in statefulset.yaml):
#   POD_NAME        e.g. dwcp-2; the ordinal is the part after the last '-'
#   POD_NAMESPACE   namespace of the StatefulSet
#   REPLICAS        committee size; must equal the StatefulSet's replicas
#   CLUSTER_DOMAIN  usually cluster.local
#   PEER_SERVICE    name prefix of the per-ordinal Services (dwcp-peer-)
#   CONSENSUS_PORT  port of the consensus listener and of the peer Services
#   HTTP_PORT       port of the HTTP API
#   DNS_TIMEOUT     seconds to wait for all peer names to resolve (default 600)
set -eu

fail() {
    echo "render-config: $*" >&2
    exit 1
}

ordinal=${POD_NAME##*-}
case $ordinal in
    '' | *[!0-9]*) fail "cannot take an ordinal from pod name '$POD_NAME'" ;;
esac
[ "$ordinal" -lt "$REPLICAS" ] || fail "ordinal $ordinal is outside a committee of $REPLICAS"

key=/secrets/node-$ordinal.key
[ -r "$key" ] || fail "no key $key in the dwcp-keys Secret"
token=$(cat /secrets/http-token)
# The token goes into a TOML string: accept only what keygen produces (hex) and
# similar plain tokens, never quotes or backslashes.
case $token in
    *[!A-Za-z0-9_.-]*) fail "http-token may contain only letters, digits, '_', '.', '-'" ;;
esac
[ "${#token}" -ge 16 ] || fail "http-token must be at least 16 characters"

deadline=$(($(date +%s) + ${DNS_TIMEOUT:-600}))
peers=""
i=0
while [ "$i" -lt "$REPLICAS" ]; do
    name=$PEER_SERVICE$i.$POD_NAMESPACE.svc.$CLUSTER_DOMAIN
    while :; do
        # First address getent reports; empty if the name does not resolve yet.
        ip=$(getent hosts "$name" | { read -r addr _ && echo "$addr"; } || true)
        [ -n "$ip" ] && break
        [ "$(date +%s)" -lt "$deadline" ] || fail "$name did not resolve within ${DNS_TIMEOUT:-600} s"
        echo "render-config: waiting for $name to resolve"
        sleep 2
    done
    case $ip in
        *:*) addr="[$ip]:$CONSENSUS_PORT" ;; # IPv6 needs brackets in a socket address
        *) addr="$ip:$CONSENSUS_PORT" ;;
    esac
    echo "render-config: peer $i is $name = $addr"
    peers="$peers    \"$addr\",
"
    i=$((i + 1))
done

umask 077
install -m 0600 "$key" /etc/dwcp/node.key
cat >/etc/dwcp/node.toml.tmp <<TOML
# Written by render-config.sh for pod $POD_NAME.
id = $ordinal
listen = "0.0.0.0:$CONSENSUS_PORT"
http = "0.0.0.0:$HTTP_PORT"
peers = [
$peers]
committee = "/etc/dwcp-committee/committee.json"
key = "node.key"
store = "/var/lib/dwcp/node.redb"
engine = "pbft"
http_token = "$token"
TOML
mv /etc/dwcp/node.toml.tmp /etc/dwcp/node.toml
echo "render-config: wrote /etc/dwcp/node.toml for node $ordinal"
