#!/bin/sh
# Init step of a dwcpd pod: writes /etc/dwcp/node.toml for this pod's ordinal and
# copies this pod's key (only its own) out of the all-keys Secret.
#
# Peers are the pods' DNS names under the StatefulSet's headless Service,
# dwcp-<i>.dwcp.<namespace>.svc.<domain>:<port>. dwcpd resolves a peer's name each
# time it dials it, so a pod recreated with a new IP is found again at the next
# reconnect, and a name that does not resolve yet (a pod still being scheduled) is
# simply retried. Nothing here waits for DNS.
#
# Environment (set in statefulset.yaml):
#   POD_NAME        e.g. dwcp-2; the ordinal is the part after the last '-'
#   POD_NAMESPACE   namespace of the StatefulSet
#   REPLICAS        committee size; must equal the StatefulSet's replicas
#   CLUSTER_DOMAIN  usually cluster.local
#   SERVICE_NAME    the StatefulSet's headless governing Service (dwcp)
#   CONSENSUS_PORT  port of the consensus listener
#   HTTP_PORT       port of the HTTP API
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

# Pod <statefulset>-<i>: the StatefulSet's name is the pod name minus its ordinal.
set_name=${POD_NAME%-*}
peers=""
i=0
while [ "$i" -lt "$REPLICAS" ]; do
    addr=$set_name-$i.$SERVICE_NAME.$POD_NAMESPACE.svc.$CLUSTER_DOMAIN:$CONSENSUS_PORT
    echo "render-config: peer $i is $addr"
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
