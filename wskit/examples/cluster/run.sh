#!/usr/bin/env bash
# A wskit cluster on one machine: Debian's redis-server, N counter nodes sharing the counter
# through it (`counter --redis`), and Debian's nginx in front as the load balancer, all on
# loopback, unprivileged, with their files in a temporary directory. Ctrl-C (or SIGTERM)
# stops them all.
#
#   bash wskit/examples/cluster/run.sh            # then open http://127.0.0.1:8800/
#
# Environment: NODES (default 3), PORT (nginx's, default 8800), NODE_PORTS (default the NODES
# ports after PORT), REDIS_PORT (default PORT+100), COUNTER (a built counter example; default:
# cargo builds it).
set -euo pipefail
cd "$(dirname "$0")/../../.."

NODES="${NODES:-3}"
PORT="${PORT:-8800}"
REDIS_PORT="${REDIS_PORT:-$((PORT + 100))}"
if [ -z "${NODE_PORTS:-}" ]; then
  NODE_PORTS="$(seq $((PORT + 1)) $((PORT + NODES)))"
fi
DIR="$(mktemp -d "${TMPDIR:-/tmp}/wskit-cluster.XXXXXX")"
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
REDIS="$(command -v redis-server || echo /usr/bin/redis-server)"
pids=()

stop() {
  trap - INT TERM EXIT
  # nginx's master, the nodes (they close their WebSockets with 1001), then Redis.
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$DIR"
  echo "cluster stopped"
}
trap stop EXIT
trap 'stop; exit 0' INT TERM

if [ -z "${COUNTER:-}" ]; then
  cargo build --quiet -p wskit --example counter
  COUNTER="target/debug/examples/counter"
fi

"$REDIS" --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --dir "$DIR" \
  >"$DIR/redis.log" 2>&1 &
pids+=($!)
# The nodes connect to Redis when they start: wait until it listens.
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null; then break; fi
  sleep 0.1
done

upstreams=""
i=0
for port in $NODE_PORTS; do
  i=$((i + 1))
  "$COUNTER" "127.0.0.1:$port" --redis "redis://127.0.0.1:$REDIS_PORT/" --name "node$i" \
    >"$DIR/node$i.log" 2>&1 &
  pids+=($!)
  echo "node$i: pid $! on 127.0.0.1:$port"
  # Passive health checks (open-source nginx has no active ones): a node that refuses
  # connections is skipped for 10 s.
  upstreams+="    server 127.0.0.1:$port max_fails=1 fail_timeout=10s;"$'\n'
done

mkdir -p "$DIR/nginx/tmp"
user=""
[ "$(id -u)" = 0 ] && user="user root;"
cat >"$DIR/nginx/nginx.conf" <<CONF
$user
worker_processes 1;
daemon off;
pid $DIR/nginx/nginx.pid;
error_log $DIR/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log $DIR/nginx/access.log;
  client_body_temp_path $DIR/nginx/tmp/body;
  proxy_temp_path $DIR/nginx/tmp/proxy;
  fastcgi_temp_path $DIR/nginx/tmp/fastcgi;
  uwsgi_temp_path $DIR/nginx/tmp/uwsgi;
  scgi_temp_path $DIR/nginx/tmp/scgi;
  map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
  upstream counter {
$upstreams  }
  server {
    listen 127.0.0.1:$PORT;
    location / {
      proxy_pass http://counter;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_read_timeout 1h;
      proxy_next_upstream error timeout;
    }
  }
}
CONF
"$NGINX" -p "$DIR/nginx" -c "$DIR/nginx/nginx.conf" &
pids+=($!)

# Ready when nginx and every node accept connections.
for port in "$PORT" $NODE_PORTS; do
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.1
  done
done
echo "cluster ready: http://127.0.0.1:$PORT/ ($i nodes, Redis on $REDIS_PORT, files in $DIR)"
wait
