#!/usr/bin/env bash
# Load hosts on one machine, for trying --load-hosts without other
# machines (and for docs/hosts.md's figures): two network namespaces joined
# by a veth pair, the server's `h2lab-lab-srv` (198.18.0.1) and the load's
# `h2lab-lab-cli` (198.18.0.2, addresses of the range reserved for
# benchmarks that exist only inside them), and in the load's namespace
# two sshd, hosts `a` (port 2201) and `b` (port 2202), and in the
# server's one, host `s` (198.18.0.1 port 2200, for --server-host), with
# host and user keys made here, never the machine's own. The load hosts'
# sshd, and so each session they run, are pinned to LOAD_CPU (default 1),
# host `s`'s to SERVER_CPU (default 0), and each veth end's receive is
# steered to its side's CPU (RPS), as on two machines: pin the server to
# SERVER_CPU.
#
#   scripts/hosts-lab.sh up      make it; prints the ssh configuration file
#   scripts/hosts-lab.sh down    remove it all
#
# Then, from the server's namespace (the server here, the load on a and b):
#
#   ip netns exec h2lab-lab-srv target/release/h2lab bench --listen 198.18.0.1 \
#     --load-hosts a,b --ssh-config /run/h2lab-lab/ssh_config \
#     --remote-bin "$PWD/target/release/h2lab" --dispatch poll --tls none
#
# or from the load's (the server on s): ip netns exec h2lab-lab-cli ...
#   bench --listen 198.18.0.1 --server-host s [--load-hosts a] ...
#
# Needs root (namespaces, sshd), iproute2 and openssh-server.
set -euo pipefail
dir=/run/h2lab-lab
srv=h2lab-lab-srv
cli=h2lab-lab-cli
load_cpu=${LOAD_CPU:-1}
server_cpu=${SERVER_CPU:-0}

down() {
  for pidfile in "$dir"/sshd-*.pid; do
    [ -e "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  ip netns del "$srv" 2>/dev/null || true
  ip netns del "$cli" 2>/dev/null || true
  rm -rf "$dir"
}

up() {
  down
  mkdir -p -m 700 "$dir" /run/sshd
  ip netns add "$srv"
  ip netns add "$cli"
  ip link add h2llabs netns "$srv" type veth peer name h2llabc netns "$cli"
  ip -n "$srv" addr add 198.18.0.1/30 dev h2llabs
  ip -n "$cli" addr add 198.18.0.2/30 dev h2llabc
  for ns in "$srv" "$cli"; do ip -n "$ns" link set lo up; done
  ip -n "$srv" link set h2llabs up
  ip -n "$cli" link set h2llabc up
  # /sys shows a namespace's devices to a process that mounted it there.
  ip netns exec "$srv" sh -c "printf %x $((1 << server_cpu)) > /sys/class/net/h2llabs/queues/rx-0/rps_cpus"
  ip netns exec "$cli" sh -c "printf %x $((1 << load_cpu)) > /sys/class/net/h2llabc/queues/rx-0/rps_cpus"
  ssh-keygen -q -t ed25519 -N '' -C h2lab-lab -f "$dir/host"
  ssh-keygen -q -t ed25519 -N '' -C h2lab-lab -f "$dir/user"
  cp "$dir/user.pub" "$dir/authorized_keys"
  : >"$dir/known_hosts"
  : >"$dir/ssh_config"
  for host in a:2201:198.18.0.2:$cli:$load_cpu b:2202:198.18.0.2:$cli:$load_cpu \
              s:2200:198.18.0.1:$srv:$server_cpu; do
    IFS=: read -r name port addr ns cpu <<<"$host"
    cat >"$dir/sshd_$name" <<EOF
Port $port
ListenAddress $addr
HostKey $dir/host
PidFile $dir/sshd-$name.pid
AuthorizedKeysFile $dir/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
LogLevel ERROR
EOF
    ip netns exec "$ns" taskset -c "$cpu" /usr/sbin/sshd -f "$dir/sshd_$name"
    echo "[$addr]:$port $(cat "$dir/host.pub")" >>"$dir/known_hosts"
    printf 'Host %s\n  HostName %s\n  Port %s\n' "$name" "$addr" "$port" >>"$dir/ssh_config"
  done
  cat >>"$dir/ssh_config" <<EOF
Host *
  User root
  IdentityFile $dir/user
  IdentitiesOnly yes
  UserKnownHostsFile $dir/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  LogLevel ERROR
EOF
  echo "$dir/ssh_config"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
