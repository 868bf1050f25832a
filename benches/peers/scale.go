// The scenarios of `warren-bench --peers`, on Go: the same programs as
// Warren's (benches/src/lua.rs and scale.rs) with goroutines for processes
// and channels for mailboxes, timed the same way.
// Usage: go run scale.go SCENARIO N; prints the nanoseconds it took.
// Run with GOMAXPROCS=1 for one thread.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"
)

type msg struct {
	id   int
	kind string
	v    int
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: scale.go SCENARIO N")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "N:", err)
		os.Exit(2)
	}
	run, ok := scenarios[os.Args[1]]
	if !ok {
		fmt.Fprintln(os.Stderr, "unknown scenario", os.Args[1])
		os.Exit(2)
	}
	fmt.Println(run(n).Nanoseconds())
}

var scenarios = map[string]func(int) time.Duration{
	"spawn":     spawn,
	"one_way":   oneWay,
	"ping_pong": pingPong,
	"skynet":    skynet,
	"ring":      ring,
	"fan_out":   fanOut,
	"big":       big,
}

// n goroutines started until each waits on its channel.
func spawn(n int) time.Duration {
	var waiting atomic.Int64
	stop := make(chan struct{})
	t0 := time.Now()
	for i := 0; i < n; i++ {
		go func() {
			waiting.Add(1)
			<-stop
		}()
	}
	for waiting.Load() < int64(n) {
		runtime.Gosched()
	}
	took := time.Since(t0)
	close(stop)
	return took
}

// n three-field structs to a receiver, at most 256 ahead of it.
func oneWay(n int) time.Duration {
	in, ack := make(chan msg, 256), make(chan struct{})
	go func() {
		for i := 1; i <= n; i++ {
			<-in
			if i%256 == 0 || i == n {
				ack <- struct{}{}
			}
		}
	}()
	t0 := time.Now()
	for i := 1; i <= n; i++ {
		in <- msg{i, "m", i}
		if i%256 == 0 {
			<-ack
		}
	}
	if n%256 != 0 {
		<-ack
	}
	return time.Since(t0)
}

// n round trips over two unbuffered channels.
func pingPong(n int) time.Duration {
	ping, pong := make(chan int), make(chan int)
	go func() {
		for v := range ping {
			pong <- v
		}
	}()
	t0 := time.Now()
	for i := 0; i < n; i++ {
		ping <- i
		<-pong
	}
	took := time.Since(t0)
	close(ping)
	return took
}

func skynetNode(parent chan<- int, num, size, div int) {
	if size == 1 {
		parent <- num
		return
	}
	mine, step := make(chan int, div), size/div
	for i := 0; i < div; i++ {
		go skynetNode(mine, num+i*step, step, div)
	}
	sum := 0
	for i := 0; i < div; i++ {
		sum += <-mine
	}
	parent <- sum
}

func skynet(n int) time.Duration {
	root := make(chan int, 1)
	t0 := time.Now()
	go skynetNode(root, 0, n, 10)
	sum := <-root
	took := time.Since(t0)
	if sum != n*(n-1)/2 {
		panic(fmt.Sprint("skynet sum ", sum))
	}
	return took
}

// A token passed n times around a ring of 503 goroutines.
func ring(n int) time.Duration {
	const size = 503
	inboxes := make([]chan int, size)
	for i := range inboxes {
		inboxes[i] = make(chan int, 1)
	}
	done := make(chan struct{})
	for i := 0; i < size; i++ {
		in, next := inboxes[i], inboxes[(i+1)%size]
		go func() {
			for t := range in {
				if t == 0 {
					done <- struct{}{}
				} else {
					next <- t - 1
				}
			}
		}()
	}
	t0 := time.Now()
	inboxes[0] <- n
	<-done
	took := time.Since(t0)
	for _, in := range inboxes {
		close(in)
	}
	return took
}

// 10,000 goroutines, n messages to each (round by round).
func fanOut(n int) time.Duration {
	const width = 10000
	done := make(chan struct{}, width)
	t0 := time.Now()
	leaves := make([]chan int, width)
	for i := range leaves {
		in := make(chan int, 64)
		leaves[i] = in
		go func() {
			for k := 0; k < n; k++ {
				<-in
			}
			done <- struct{}{}
		}()
	}
	for r := 0; r < n; r++ {
		for _, in := range leaves {
			in <- r
		}
	}
	for i := 0; i < width; i++ {
		<-done
	}
	return time.Since(t0)
}

// Savina's Big (scale.rs's BIG_ACTOR): 400 goroutines, each pinging a
// random one n times and answering the others' pings meanwhile. A
// message is the pinger's index, or bigPong or bigStop.
func big(n int) time.Duration {
	const width = 400
	const bigPong, bigStop = -1, -2
	// At most one ping per goroutine, one pong and a stop are ever queued.
	inboxes := make([]chan int, width)
	for i := range inboxes {
		inboxes[i] = make(chan int, width+2)
	}
	done := make(chan struct{}, width)
	answered := make(chan int, width)
	t0 := time.Now()
	for i := 0; i < width; i++ {
		go func(me int) {
			x, left, count := uint32(me+1), n, 0
			ping := func() {
				x = x*69069 + 1
				inboxes[int(x>>16)%width] <- me
			}
			ping()
			for m := range inboxes[me] {
				switch {
				case m >= 0:
					count++
					inboxes[m] <- bigPong
				case m == bigPong:
					left--
					if left == 0 {
						done <- struct{}{}
					} else {
						ping()
					}
				default:
					answered <- count
					return
				}
			}
		}(i)
	}
	for i := 0; i < width; i++ {
		<-done
	}
	took := time.Since(t0)
	total := 0
	for _, in := range inboxes {
		in <- bigStop
	}
	for i := 0; i < width; i++ {
		total += <-answered
	}
	if total != width*n {
		panic(fmt.Sprint("big answered ", total))
	}
	return took
}
