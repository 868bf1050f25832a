#!/usr/bin/env escript
%%! +P 4000000
%% The scenarios of `warren-bench --peers`, on BEAM: the same programs as
%% Warren's (benches/src/lua.rs and scale.rs), timed the same way.
%% Usage: escript scale.erl SCENARIO N; prints the nanoseconds it took.
%% Run with ERL_FLAGS="+S 1" for one scheduler; the process limit is
%% raised above for Skynet 1M (1,111,111 processes).
-mode(compile).

main([Scenario, N]) ->
    Ns = run(list_to_atom(Scenario), list_to_integer(N)),
    io:format("~b~n", [Ns]);
main(_) ->
    io:format(standard_error, "usage: scale.erl SCENARIO N~n", []),
    halt(2).

now_ns() -> erlang:monotonic_time(nanosecond).

%% N spawns until each waits on its inbox (the last one waiting means all
%% are: the run queue is FIFO), then stops them.
run(spawn, N) ->
    T0 = now_ns(),
    Pids = [spawn(fun() -> receive stop -> ok end end) || _ <- lists:seq(1, N)],
    wait_waiting(lists:last(Pids)),
    Ns = now_ns() - T0,
    [P ! stop || P <- Pids],
    Ns;
%% N three-field maps to a receiver, at most 256 ahead of it.
run(one_way, N) ->
    Self = self(),
    Sink = spawn(fun() -> sink(Self, N, 1) end),
    T0 = now_ns(),
    send_maps(Sink, N, 1),
    receive done -> ok end,
    now_ns() - T0;
%% N round trips between two processes.
run(ping_pong, N) ->
    Self = self(),
    Echo = spawn(fun() -> echo() end),
    T0 = now_ns(),
    ping(Echo, Self, N),
    Ns = now_ns() - T0,
    Echo ! stop,
    Ns;
run(skynet, N) ->
    Self = self(),
    T0 = now_ns(),
    spawn(fun() -> skynet(Self, 0, N, 10) end),
    Sum = receive {r, S} -> S end,
    Sum = N * (N - 1) div 2,
    now_ns() - T0;
%% A token passed N times around a ring of 503 processes.
run(ring, N) ->
    Self = self(),
    Nodes = [spawn(fun() -> ring_node(Self) end) || _ <- lists:seq(1, 503)],
    Next = tl(Nodes) ++ [hd(Nodes)],
    [P ! {next, Q} || {P, Q} <- lists:zip(Nodes, Next)],
    T0 = now_ns(),
    hd(Nodes) ! {t, N},
    receive done -> ok end,
    Ns = now_ns() - T0,
    [P ! stop || P <- Nodes],
    Ns;
%% 10,000 processes, N messages to each (round by round).
run(fan_out, N) ->
    Self = self(),
    T0 = now_ns(),
    Leaves = [spawn(fun() -> fan_leaf(Self, N) end) || _ <- lists:seq(1, 10000)],
    [[L ! {m, R} || L <- Leaves] || R <- lists:seq(1, N)],
    [receive done -> ok end || _ <- Leaves],
    now_ns() - T0;
%% Savina's Big: 400 processes, each pinging a random one N times.
run(big, N) ->
    Self = self(),
    T0 = now_ns(),
    Actors = [spawn(fun() -> big_loop(Self, N, I, {}, 0) end) || I <- lists:seq(1, 400)],
    Peers = list_to_tuple(Actors),
    [A ! {peers, Peers} || A <- Actors],
    [receive done -> ok end || _ <- Actors],
    Ns = now_ns() - T0,
    [A ! stop || A <- Actors],
    Answered = lists:sum([receive {answered, K} -> K end || _ <- Actors]),
    Answered = 400 * N,
    Ns.

wait_waiting(P) ->
    case erlang:process_info(P, status) of
        {status, waiting} -> ok;
        _ -> erlang:yield(), wait_waiting(P)
    end.

send_maps(_, 0, _) -> ok;
send_maps(Sink, Left, I) ->
    Sink ! #{id => I, kind => m, v => I},
    case I rem 256 of
        0 -> receive ack -> ok end;
        _ -> ok
    end,
    send_maps(Sink, Left - 1, I + 1).

sink(Parent, N, I) when I > N -> Parent ! done;
sink(Parent, N, I) ->
    receive #{} -> ok end,
    case I rem 256 of
        0 -> Parent ! ack;
        _ -> ok
    end,
    sink(Parent, N, I + 1).

echo() ->
    receive
        {ping, From} -> From ! pong, echo();
        stop -> ok
    end.

ping(_, _, 0) -> ok;
ping(Echo, Self, N) ->
    Echo ! {ping, Self},
    receive pong -> ok end,
    ping(Echo, Self, N - 1).

skynet(Parent, Num, 1, _) -> Parent ! {r, Num};
skynet(Parent, Num, Size, Div) ->
    Self = self(),
    Step = Size div Div,
    [spawn(fun() -> skynet(Self, Num + I * Step, Step, Div) end) || I <- lists:seq(0, Div - 1)],
    Parent ! {r, collect(Div, 0)}.

collect(0, Sum) -> Sum;
collect(K, Sum) -> receive {r, S} -> collect(K - 1, Sum + S) end.

ring_node(Driver) ->
    receive {next, Next} -> ring_loop(Driver, Next) end.

ring_loop(Driver, Next) ->
    receive
        {t, 0} -> Driver ! done, ring_loop(Driver, Next);
        {t, T} -> Next ! {t, T - 1}, ring_loop(Driver, Next);
        stop -> ok
    end.

fan_leaf(Driver, 0) -> Driver ! done;
fan_leaf(Driver, K) -> receive {m, _} -> fan_leaf(Driver, K - 1) end.

%% A Big actor (scale.rs's BIG_ACTOR): Left pongs to go, X its generator.
big_loop(Driver, Left, X, Peers, Answered) ->
    receive
        {ping, From} ->
            From ! pong,
            big_loop(Driver, Left, X, Peers, Answered + 1);
        pong when Left =:= 1 ->
            Driver ! done,
            big_loop(Driver, 0, X, Peers, Answered);
        pong ->
            big_loop(Driver, Left - 1, big_ping(Peers, X), Peers, Answered);
        {peers, P} ->
            big_loop(Driver, Left, big_ping(P, X), P, Answered);
        stop ->
            Driver ! {answered, Answered}
    end.

big_ping(Peers, X) ->
    X1 = (X * 69069 + 1) band 16#FFFFFFFF,
    element((X1 bsr 16) rem tuple_size(Peers) + 1, Peers) ! {ping, self()},
    X1.
