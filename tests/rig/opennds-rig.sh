#!/usr/bin/env bash
# The real openNDS (Debian's `opennds` 9.10, installed by .ci/run) in network namespaces of its
# own, for tests/opennds_real.rs. Needs root. Installs nothing.
#
#   opennds-rig.sh up P DIR          namespaces P-gw (openNDS, dnsmasq), P-c1 and P-c2 (clients
#                                    on the gateway's br-lan), P-wan (an HTTP server, 10.77.0.2)
#   opennds-rig.sh lease P DIR N     client N (1 or 2) takes a DHCP lease; prints "MAC IP"
#   opennds-rig.sh nds-start P DIR [LINE...]   openNDS with the rig's config plus LINEs
#   opennds-rig.sh nds-stop P DIR    stops openNDS as its service would (SIGTERM)
#   opennds-rig.sh down P DIR        kills everything in the namespaces, deletes them
#
# Only addresses inside these namespaces are used: 192.168.77.0/24 (the hotspot LAN) and
# 10.77.0.0/24 (the gateway's "internet"). `ndsctl` is run from outside: it talks to openNDS over
# the Unix socket /tmp/ndsctl.sock (file system, not network), as on a router.
set -euo pipefail
cmd=${1:?usage: opennds-rig.sh up|lease|nds-start|nds-stop|down P ...}
P=${2:?namespace prefix}

in_ns() { local ns=$1; shift; ip netns exec "$P-$ns" "$@"; }

up() {
  local dir=$1
  mkdir -p "$dir/bin" "$dir/misc" "$dir/www"
  for ns in gw c1 c2 wan; do
    ip netns add "$P-$ns"
    ip -n "$P-$ns" link set lo up
  done
  ip -n "$P-gw" link add br-lan type bridge
  ip -n "$P-gw" addr add 192.168.77.1/24 dev br-lan
  ip -n "$P-gw" link set br-lan up
  for c in c1 c2; do
    ip link add "$P-$c" type veth peer name eth0 netns "$P-$c"
    ip link set "$P-$c" netns "$P-gw"
    ip -n "$P-gw" link set "$P-$c" master br-lan up
    ip -n "$P-$c" link set eth0 up
  done
  ip link add "$P-up" type veth peer name eth0 netns "$P-wan"
  ip link set "$P-up" netns "$P-gw"
  ip -n "$P-gw" addr add 10.77.0.1/24 dev "$P-up"
  ip -n "$P-gw" link set "$P-up" up
  ip -n "$P-gw" route add default via 10.77.0.2
  ip -n "$P-wan" addr add 10.77.0.2/24 dev eth0
  ip -n "$P-wan" link set eth0 up
  ip -n "$P-wan" route add 192.168.77.0/24 via 10.77.0.1
  in_ns gw sysctl -qw net.ipv4.ip_forward=1
  # The "internet": one page to reach once let through.
  echo "hello from the internet" > "$dir/www/index.html"
  in_ns wan python3 -m http.server 80 --bind 10.77.0.2 --directory "$dir/www" \
    >"$dir/http.log" 2>&1 &
  # Leases where openNDS's dhcp_check (libopennds.sh) looks: /var/lib/misc/dnsmasq.leases, which
  # openNDS sees through a bind mount (nds-start). openNDS admits only clients with a lease.
  : > "$dir/misc/dnsmasq.leases"
  in_ns gw dnsmasq --keep-in-foreground --interface=br-lan --bind-interfaces --port=0 \
    --dhcp-range=192.168.77.100,192.168.77.150,1h --dhcp-authoritative \
    --dhcp-leasefile="$dir/misc/dnsmasq.leases" --pid-file="$dir/dnsmasq.pid" \
    >"$dir/dnsmasq.log" 2>&1 &
  # Debian 12's openNDS 9.10 creates nft base chains at priority -100, which Debian's
  # iptables-nft 1.8.9 refuses beside its own (openNDS then fails to start: see
  # ../shared/docs/protocols.md §7). A wrapper first in openNDS's PATH rewrites it to 0.
  cat > "$dir/bin/nft" <<'EOF'
#!/bin/sh
n=$#; i=0
while [ "$i" -lt "$n" ]; do
  a=$1; shift
  case $a in *"priority -100"*) a=$(printf '%s' "$a" | sed 's/priority -100/priority 0/') ;; esac
  set -- "$@" "$a"; i=$((i + 1))
done
exec /usr/sbin/nft "$@"
EOF
  chmod +x "$dir/bin/nft"
  cat > "$dir/udhcpc.sh" <<'EOF'
#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route replace default via "${router%% *}"
    ;;
esac
EOF
  chmod +x "$dir/udhcpc.sh"
  for _ in $(seq 50); do [ -s "$dir/dnsmasq.pid" ] && break; sleep 0.1; done
  [ -s "$dir/dnsmasq.pid" ] || { cat "$dir/dnsmasq.log" >&2; echo "dnsmasq did not start" >&2; exit 1; }
}

lease() {
  local dir=$1 n=$2
  in_ns "c$n" busybox udhcpc -i eth0 -q -n -f -t 10 -T 1 -s "$dir/udhcpc.sh" >/dev/null 2>&1
  local mac ip
  mac=$(ip -n "$P-c$n" -o link show eth0 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
  ip=$(ip -n "$P-c$n" -o -4 addr show eth0 | awk '{print $4}' | cut -d/ -f1)
  [ -n "$ip" ] || { echo "client $n got no lease" >&2; exit 1; }
  echo "$mac $ip"
}

nds_start() {
  local dir=$1; shift
  {
    echo "GatewayInterface br-lan"
    echo "GatewayName rig"
    # DNS and DHCP to the gateway before login, as in the shipped config.
    echo "FirewallRuleSet users-to-router {"
    echo "  FirewallRule allow udp port 53"
    echo "  FirewallRule allow tcp port 53"
    echo "  FirewallRule allow udp port 67"
    echo "}"
    for line in "$@"; do echo "$line"; done
  } > "$dir/opennds.conf"
  # openNDS and its scripts read /etc/opennds/opennds.conf; the rig's is bind-mounted over it in
  # openNDS's own mount namespace (ip netns exec makes one), so the machine's file is untouched.
  # Ready is when openNDS says so (firewall set up), not when ndsctl first answers: under load
  # the firewall setup takes seconds more. The log is appended to across restarts.
  local before
  before=$(grep -c 'openNDS is now running' "$dir/opennds.log" 2>/dev/null || true)
  # Not through in_ns (a function: $! would be a subshell's pid, not openNDS's).
  ip netns exec "$P-gw" sh -c "mount --bind '$dir/opennds.conf' /etc/opennds/opennds.conf &&
    mount --bind '$dir/misc' /var/lib/misc &&
    exec env PATH='$dir/bin':\$PATH /usr/bin/opennds -f -d 1 -c /etc/opennds/opennds.conf" \
    >>"$dir/opennds.log" 2>&1 &
  echo $! > "$dir/opennds.pid"
  for _ in $(seq 300); do
    if [ "$(grep -c 'openNDS is now running' "$dir/opennds.log" 2>/dev/null || true)" -gt "${before:-0}" ] &&
      ndsctl status 2>/dev/null | grep -q '^Version'; then
      return 0
    fi
    sleep 0.2
  done
  tail -40 "$dir/opennds.log" >&2
  echo "openNDS did not start within 60 s" >&2
  return 1
}

nds_stop() {
  local dir=$1 pid
  pid=$(cat "$dir/opennds.pid" 2>/dev/null || true)
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$dir/opennds.pid"
  # A socket file left behind refuses connections ("Connection refused") until the next openNDS
  # binds its own; and give the stopped one's helper scripts a moment to finish.
  rm -f /tmp/ndsctl.sock
  sleep 1
}

down() {
  local dir=$1
  for ns in gw c1 c2 wan; do
    if ip netns list | grep -qw "$P-$ns"; then
      # shellcheck disable=SC2046
      kill -KILL $(ip netns pids "$P-$ns") 2>/dev/null || true
      ip netns delete "$P-$ns" || true
    fi
  done
  [ -n "$dir" ] && rm -f "$dir/opennds.pid"
  # openNDS left behind by a killed test: its socket would answer the next rig's ndsctl.
  rm -f /tmp/ndsctl.sock
}

case "$cmd" in
  up) up "${3:?dir}" ;;
  lease) lease "${3:?dir}" "${4:?client 1 or 2}" ;;
  nds-start)
    d=${3:?dir}; shift 3
    # Seen once in ~10 restarts under load: openNDS 9.10 logs "now running" but its control
    # socket refuses every connection. The rig (not the daemon) starts it once more then.
    nds_start "$d" "$@" || { nds_stop "$d"; nds_start "$d" "$@"; } ;;
  nds-stop) nds_stop "${3:?dir}" ;;
  down) down "${3:-}" ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
