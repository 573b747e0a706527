#!/usr/bin/env bash
# A home network on one machine, for the reachability tests (docs: NAT-LAB facts in
# ../shared/design/NAT-LAB.md). Three network namespaces:
#
#   <p>wan  11.77.<n>.2/24          the internet side: directory, consumers
#   <p>rtr  11.77.<n>.1/24 (wan0)   the home router: nftables NAT + miniupnpd (a real IGD)
#           192.168.77.1/24 (lan0)
#   <p>lan  192.168.77.2/24         the home host: the node; default route via the router
#
# The WAN prefix is not a reserved one (miniupnpd refuses to map behind a private
# external address); it exists only inside these namespaces, nothing leaves the machine.
# The WAN has no route to the LAN: only a mapping on the router lets a consumer in.
#
# Usage (root):
#   netlab.sh install            apt-get the tools when missing (nft, miniupnpd, upnpc, curl,
#                                tcpdump)
#   netlab.sh up <p> <n> [upnp] [w]  build it; upnp=on|off (default on) starts miniupnpd;
#                                the WAN prefix is <w>.<n>.0/24 (default w=11.77; 100.64 puts
#                                the router behind carrier-grade NAT address space)
#   netlab.sh readdress <p> <n> <m>  the router's WAN address becomes 11.77.<m>.1 (the
#                                    WAN host keeps 11.77.<n>.2 and gains 11.77.<m>.2)
#   netlab.sh v6 <p> [upnp]      IPv6 mode: give lab <p> (built with upnp=off) IPv6 on every
#                                side, as below; upnp=on (default) starts miniupnpd as an
#                                IGD2 with IPv6 firewall control (pinholes)
#   netlab.sh down <p>           stop every process in the namespaces and delete them
# IPv6 mode is routed, not translated, as when a provider delegates a prefix:
#   <p>wan  2a0b:77::2/64           route to 2a0b:78::/64 via the router
#   <p>rtr  2a0b:77::1/64 (wan0), 2a0b:78::1/64 (lan0); forwarding on
#   <p>lan  2a0b:78::2/64           default route via the router
# Both prefixes are global unicast outside the blocks is_global_v6 excludes and exist
# only inside the namespaces. The router's forward chain (family inet) drops what comes
# in from the WAN unless it answers LAN traffic or a pinhole lets it in; miniupnpd puts
# its pinholes into the `miniupnpd` chain. It serves SOAP and SSDP on both address
# families of lan0 (no ipv6_listening_ip: with it, HTTP listens on IPv6 only) and grants
# a pinhole only to the IPv6 address that asks for it, for ports from 1024.
# <p> is a name prefix (a crashed run's leftovers are removed by `down` with it); <n> is
# a number 1-250 so parallel labs do not share a WAN prefix.
set -euo pipefail

cmd=${1:-}
need_root() { [ "$(id -u)" = 0 ] || { echo "netlab.sh: needs root" >&2; exit 2; }; }

install_tools() {
  need_root
  local missing=()
  command -v nft >/dev/null || missing+=(nftables)
  command -v miniupnpd >/dev/null || missing+=(miniupnpd-nftables)
  command -v upnpc >/dev/null || missing+=(miniupnpc)
  command -v curl >/dev/null || missing+=(curl)
  command -v tcpdump >/dev/null || missing+=(tcpdump)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "netlab.sh: installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || {
      apt-get update -q >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
    }
  fi
}

down() {
  local p=$1
  for ns in "${p}lan" "${p}rtr" "${p}wan"; do
    if ip netns list | grep -qw "$ns"; then
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null || true; done
      sleep 0.2
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
      ip netns del "$ns" 2>/dev/null || true
    fi
    # Files `ip netns exec` mounts over /etc (Lab::resolv_conf writes resolv.conf).
    rm -rf "/etc/netns/${ns}"
  done
  rm -rf "/tmp/netlab-${p}"
}

router_rules() {
  cat <<'NFT'
table inet filter {
  chain miniupnpd {
  }
  chain prerouting_miniupnpd {
  }
  chain postrouting_miniupnpd {
  }
  chain forward {
    type filter hook forward priority 0; policy drop;
    iifname "lan0" accept
    ct state established,related accept
    jump miniupnpd
  }
  chain prerouting {
    type nat hook prerouting priority -100; policy accept;
    jump prerouting_miniupnpd
  }
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
    oifname "wan0" masquerade
    jump postrouting_miniupnpd
  }
}
NFT
}

start_upnp() {
  local p=$1 extra=${2:-} dir="/tmp/netlab-${p}"
  mkdir -p "$dir"
  cat >"$dir/miniupnpd.conf" <<CONF
ext_ifname=wan0
listening_ip=lan0
port=0
enable_upnp=yes
enable_natpmp=yes
secure_mode=yes
system_uptime=yes
uuid=3d3cec3a-8cf0-11e0-98ee-001a6b2e6a$(printf '%02x' $((RANDOM % 256)))
upnp_table_name=filter
upnp_nat_table_name=filter
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
allow 1024-65535 192.168.77.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
${extra}
CONF
  # Its own pid file: the default one is shared by every lab on the machine.
  ip netns exec "${p}rtr" miniupnpd -d -f "$dir/miniupnpd.conf" -P "$dir/miniupnpd.pid" >"$dir/miniupnpd.log" 2>&1 &
  # Ready when it listens for SSDP.
  for _ in $(seq 1 50); do
    if ip netns exec "${p}rtr" ss -lun 2>/dev/null | grep -q ':1900 '; then return 0; fi
    sleep 0.1
  done
  echo "netlab.sh: miniupnpd did not start:" >&2
  cat "$dir/miniupnpd.log" >&2
  return 1
}

up() {
  need_root
  local p=$1 n=$2 upnp=${3:-on} w=${4:-11.77}
  down "$p"
  ip netns add "${p}wan"
  ip netns add "${p}rtr"
  ip netns add "${p}lan"
  ip link add "${p}w" type veth peer name wan0 netns "${p}rtr"
  ip link set "${p}w" netns "${p}wan"
  ip -n "${p}wan" link set "${p}w" name eth0
  ip link add "${p}l" type veth peer name lan0 netns "${p}rtr"
  ip link set "${p}l" netns "${p}lan"
  ip -n "${p}lan" link set "${p}l" name eth0
  for ns in "${p}wan" "${p}rtr" "${p}lan"; do ip -n "$ns" link set lo up; done
  ip -n "${p}wan" addr add "${w}.${n}.2/24" dev eth0
  ip -n "${p}wan" link set eth0 up
  ip -n "${p}rtr" addr add "${w}.${n}.1/24" dev wan0
  ip -n "${p}rtr" addr add 192.168.77.1/24 dev lan0
  ip -n "${p}rtr" link set wan0 up
  ip -n "${p}rtr" link set lan0 up
  ip -n "${p}lan" addr add 192.168.77.2/24 dev eth0
  ip -n "${p}lan" link set eth0 up
  ip -n "${p}lan" route add default via 192.168.77.1
  ip netns exec "${p}rtr" sysctl -qw net.ipv4.ip_forward=1
  router_rules | ip netns exec "${p}rtr" nft -f -
  if [ "$upnp" = on ]; then start_upnp "$p"; fi
  echo "export NETLAB_WAN=${p}wan NETLAB_RTR=${p}rtr NETLAB_LAN=${p}lan NETLAB_WAN_IP=${w}.${n}.2 NETLAB_ROUTER_WAN_IP=${w}.${n}.1 NETLAB_LAN_IP=192.168.77.2"
}

v6() {
  need_root
  local p=$1 upnp=${2:-on}
  # nodad: the addresses are usable (not tentative) at once.
  for ns in "${p}wan" "${p}rtr" "${p}lan"; do
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=0
  done
  ip -n "${p}wan" addr add 2a0b:77::2/64 dev eth0 nodad
  ip -n "${p}rtr" addr add 2a0b:77::1/64 dev wan0 nodad
  ip -n "${p}rtr" addr add 2a0b:78::1/64 dev lan0 nodad
  ip -n "${p}lan" addr add 2a0b:78::2/64 dev eth0 nodad
  ip -n "${p}wan" -6 route add 2a0b:78::/64 via 2a0b:77::1
  ip -n "${p}lan" -6 route add default via 2a0b:78::1
  ip netns exec "${p}rtr" sysctl -qw net.ipv6.conf.all.forwarding=1
  # IGD2 (force_igd_desc_v1=no) describes WANIPv6FirewallControl.
  if [ "$upnp" = on ]; then start_upnp "$p" "force_igd_desc_v1=no"; fi
  echo "export NETLAB_WAN_IP6=2a0b:77::2 NETLAB_ROUTER_LAN_IP6=2a0b:78::1 NETLAB_LAN_IP6=2a0b:78::2"
}

readdress() {
  need_root
  local p=$1 n=$2 m=$3
  # The provider gives the router a new WAN address; the WAN host (directory,
  # consumers) keeps its address and gains one in the new prefix, and the old
  # prefix stays on the link, so the directory is reached as before.
  ip -n "${p}wan" addr add "11.77.${m}.2/24" dev eth0
  ip -n "${p}rtr" addr del "11.77.${n}.1/24" dev wan0
  ip -n "${p}rtr" addr add "11.77.${m}.1/24" dev wan0
  ip -n "${p}rtr" route add "11.77.${n}.0/24" dev wan0
  # miniupnpd reads the external address when asked (GetExternalIPAddress);
  # its existing mappings stay in the ruleset, as on a re-addressed router.
}

case "$cmd" in
  install) install_tools ;;
  up) up "$2" "$3" "${4:-on}" "${5:-11.77}" ;;
  v6) v6 "$2" "${3:-on}" ;;
  down) down "$2" ;;
  readdress) readdress "$2" "$3" "$4" ;;
  *) echo "usage: netlab.sh install | up <prefix> <n> [on|off] [wanprefix] | v6 <prefix> [on|off] | readdress <prefix> <n> <m> | down <prefix>" >&2; exit 2 ;;
esac
