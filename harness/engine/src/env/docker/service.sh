#!/bin/sh
# chaos-service SERVICE: how PostgreSQL, Redis and RabbitMQ start in a container of the docker
# environment, with the same settings as the local environment's (harness/engine/src/env/),
# their data under /data (the container's volume, kept across kills and restarts), listening
# on the run's private network. `chaos-service rabbitmqctl ARGS` runs rabbitmqctl against the
# container's broker. Runs under tini (the image's entrypoint), which forwards signals.
set -eu
service="${1:?usage: chaos-service postgres|redis|rabbitmq|rabbitmqctl ARGS|pg-template|rabbit-template}"
shift
rabbit_env() {
    export HOME=/data/rabbitmq LANG=C.UTF-8
    export RABBITMQ_NODENAME=rabbit@localhost
    export RABBITMQ_MNESIA_BASE=/data/rabbitmq/mnesia RABBITMQ_LOG_BASE=/data/rabbitmq/log
    export RABBITMQ_LOGS=- RABBITMQ_PID_FILE=/data/rabbitmq/pid
    export RABBITMQ_ENABLED_PLUGINS_FILE=/etc/rabbitmq/enabled_plugins
    export RABBITMQ_CONFIG_FILE=/etc/rabbitmq/rabbitmq
}
# As the local environment's broker runs (harness/engine/src/env/rabbitmq.rs): from a
# RabbitMQ home whose plugins (the scripts' ERL_LIBS) are the broker's own applications.
rabbit_server() {
    if [ -x /var/lib/chaos/rabbit-home/sbin/rabbitmq-server ]; then
        echo /var/lib/chaos/rabbit-home/sbin/rabbitmq-server
    else
        echo /usr/lib/rabbitmq/bin/rabbitmq-server
    fi
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
rabbit-template)
    # At image build time: the node directory of a broker booted once from nothing and
    # stopped cleanly, copied into each run's volume; and a RabbitMQ home of copied scripts
    # whose plugins are links to the broker's own applications, `rabbit` and what it needs
    # by each one's .app file, transitively (the scripts put <home>/plugins on the code path).
    # A failed check leaves no erl_crash.dump behind (ERL_CRASH_DUMP_SECONDS=0).
    rabbit_env
    stock=$(ls -d /usr/lib/rabbitmq/lib/rabbitmq_server-* | tail -n 1)
    test -d "$stock/plugins"
    home=/var/lib/chaos/rabbit-home
    mkdir -p "$HOME" "$home/plugins"
    cp -r "$stock/sbin" "$home/sbin"
    ln -s "$stock/escript" "$home/escript"
    ERL_CRASH_DUMP_SECONDS=0 erl -noshell -eval '
        [Dir, Out] = init:get_plain_arguments(),
        Apps = maps:from_list(
            [begin
                 P = filename:dirname(E),
                 [N, _] = string:split(filename:basename(P), "-", trailing),
                 {list_to_atom(N), P}
             end || E <- filelib:wildcard(Dir ++ "/*/ebin")]),
        true = maps:is_key(rabbit, Apps),
        Walk = fun W([], Seen) -> Seen;
                   W([A | T], Seen) ->
                       case {maps:find(A, Apps), lists:member(A, Seen)} of
                           {{ok, P}, false} ->
                               F = filename:join([P, "ebin", atom_to_list(A) ++ ".app"]),
                               {ok, [{application, _, Props}]} = file:consult(F),
                               W(proplists:get_value(applications, Props, []) ++ T, [A | Seen]);
                           _ -> W(T, Seen)
                       end
               end,
        [ok = file:make_symlink(maps:get(A, Apps),
                                filename:join(Out, filename:basename(maps:get(A, Apps))))
         || A <- Walk([rabbit], [])],
        halt().' -extra "$stock/plugins" "$home/plugins"
    ls -d "$home"/plugins/rabbit-[0-9]* >/dev/null
    # One cookie before the server and rabbitmqctl both look for it.
    od -An -N20 -tx1 /dev/urandom | tr -d ' \n' >"$HOME/.erlang.cookie"
    chmod 400 "$HOME/.erlang.cookie"
    /usr/lib/rabbitmq/bin/rabbitmq-server >/tmp/rabbit-template.log 2>&1 &
    /usr/lib/rabbitmq/bin/rabbitmqctl -n rabbit@localhost -q wait "$RABBITMQ_PID_FILE" --timeout 120 ||
        { cat /tmp/rabbit-template.log >&2; exit 1; }
    /usr/lib/rabbitmq/bin/rabbitmqctl -n rabbit@localhost -q stop
    wait
    epmd -kill >/dev/null 2>&1 || true
    test -f "$RABBITMQ_MNESIA_BASE/rabbit@localhost/schema.DAT"
    mv "$RABBITMQ_MNESIA_BASE" /var/lib/chaos/rabbit-template
    rm -rf /data/rabbitmq
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
    if [ ! -d "$RABBITMQ_MNESIA_BASE" ] && [ -d /var/lib/chaos/rabbit-template ]; then
        cp -a /var/lib/chaos/rabbit-template "$RABBITMQ_MNESIA_BASE"
    fi
    exec "$(rabbit_server)"
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
