#!/bin/sh
# chaos-service SERVICE: how PostgreSQL, Redis and RabbitMQ start in a container of the docker
# environment, with the same settings as the local environment's (harness/engine/src/env/),
# their data under /data (the container's volume, kept across kills and restarts), listening
# on the run's private network. `chaos-service rabbitmqctl ARGS` runs rabbitmqctl against the
# container's broker. Runs under tini (the image's entrypoint), which forwards signals.
set -eu
service="${1:?usage: chaos-service postgres|redis|rabbitmq|rabbitmqctl ARGS|pg-template}"
shift
rabbit_env() {
    export HOME=/data/rabbitmq LANG=C.UTF-8
    export RABBITMQ_NODENAME=rabbit@localhost
    export RABBITMQ_MNESIA_BASE=/data/rabbitmq/mnesia RABBITMQ_LOG_BASE=/data/rabbitmq/log
    export RABBITMQ_LOGS=- RABBITMQ_PID_FILE=/data/rabbitmq/pid
    export RABBITMQ_ENABLED_PLUGINS_FILE=/etc/rabbitmq/enabled_plugins
    export RABBITMQ_CONFIG_FILE=/etc/rabbitmq/rabbitmq
}
case "$service" in
pg-template)
    # At image build time: a database cluster made once, copied into each run's volume (as
    # the local environment copies its cached initdb template), so no run pays for initdb.
    bin=$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)
    mkdir -p /var/lib/chaos
    chown postgres:postgres /var/lib/chaos
    setpriv --reuid=postgres --regid=postgres --init-groups "$bin/initdb" \
        -D /var/lib/chaos/pg-template -U chaos --auth=trust -E UTF8 --locale=C --no-sync >/dev/null
    # The harness and the proxy reach it from the run's network and the mapped port.
    echo "host all all 0.0.0.0/0 trust" >>/var/lib/chaos/pg-template/pg_hba.conf
    ;;
postgres)
    bin=$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)
    data=/data/postgres
    if [ ! -s "$data/PG_VERSION" ]; then
        cp -a /var/lib/chaos/pg-template "$data"
        chown postgres:postgres /data
    fi
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$bin/postgres" -D "$data" \
        -c listen_addresses='*' -c unix_socket_directories=/tmp \
        -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
        -c max_connections=200 -c shared_buffers=64MB
    ;;
redis)
    mkdir -p /data/redis
    exec redis-server --port 6379 --bind 0.0.0.0 --protected-mode no --save "" \
        --appendonly no --dir /data/redis --daemonize no
    ;;
rabbitmq)
    rabbit_env
    mkdir -p "$HOME"
    exec /usr/lib/rabbitmq/bin/rabbitmq-server
    ;;
rabbitmqctl)
    rabbit_env
    exec /usr/lib/rabbitmq/bin/rabbitmqctl -n rabbit@localhost "$@"
    ;;
*)
    echo "chaos-service: unknown service $service" >&2
    exit 2
    ;;
esac
