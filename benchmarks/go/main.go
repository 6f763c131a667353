// Command gobench runs goconc's benchmark workloads in Go, the physical
// reference for the Python figures. Each workload prints, as the last line
// of its output, a JSON list with one object of metrics per repetition,
// named exactly as the Python workloads name them.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

type metrics map[string]float64

var workloads = map[string]func(scale float64) metrics{
	"pingpong-locked":    func(s float64) metrics { return pingPong(s, true) },
	"pingpong":           func(s float64) metrics { return pingPong(s, false) },
	"buffered-1":         func(s float64) metrics { return buffered(s, 1) },
	"buffered-4":         func(s float64) metrics { return buffered(s, 4) },
	"select4":            select4,
	"mutex-uncontended":  mutexUncontended,
	"starvation-1ms":     func(s float64) metrics { return starvation(s, time.Millisecond, 2*time.Second) },
	"starvation-100ms":   func(s float64) metrics { return starvation(s, 100*time.Millisecond, 3*time.Second) },
	"atomic-value-reads": atomicValueReads,
	"rwmutex-reads":      rwmutexReads,
	"goroutines-100k":    goroutines,
	"ctx-tree-100k":      ctxTree,
}

func main() {
	name := flag.String("workload", "", "workload to run")
	scale := flag.Float64("scale", 1, "size of the run (1 = full)")
	reps := flag.Int("reps", 5, "repetitions")
	flag.Parse()
	fn, ok := workloads[*name]
	if !ok {
		names := make([]string, 0, len(workloads))
		for n := range workloads {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(os.Stderr, "gobench: unknown workload %q; known: %v\n", *name, names)
		os.Exit(2)
	}
	fn(*scale * 0.1) // warm-up
	out := make([]metrics, 0, *reps)
	for i := 0; i < *reps; i++ {
		out = append(out, fn(*scale))
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
}

func count(base int, scale float64, min int) int {
	n := int(float64(base) * scale)
	if n < min {
		return min
	}
	return n
}

func perMicro(n int, d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(n) / 1e3 }

func pingPong(scale float64, locked bool) metrics {
	n := count(200000, scale, 1000)
	ping, pong := make(chan int), make(chan int)
	var wg sync.WaitGroup
	wg.Add(1)
	start := time.Now()
	go func() {
		defer wg.Done()
		if locked {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
		}
		for i := 0; i < n; i++ {
			pong <- <-ping
		}
	}()
	if locked {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	for i := 0; i < n; i++ {
		ping <- i
		<-pong
	}
	wg.Wait()
	return metrics{"us/round trip": perMicro(n, time.Since(start))}
}

func buffered(scale float64, producers int) metrics {
	n := count(2000000, scale, 10000) / producers * producers
	ch := make(chan int, 1024)
	var prod, cons sync.WaitGroup
	start := time.Now()
	for p := 0; p < producers; p++ {
		prod.Add(1)
		go func() {
			defer prod.Done()
			for i := 0; i < n/producers; i++ {
				ch <- i
			}
		}()
		cons.Add(1)
		go func() {
			defer cons.Done()
			for range ch {
			}
		}()
	}
	prod.Wait()
	close(ch)
	cons.Wait()
	return metrics{"us/item": perMicro(n, time.Since(start))}
}

func select4(scale float64) metrics {
	n := count(400000, scale, 4000) / 4 * 4
	chans := [4]chan int{make(chan int, 16), make(chan int, 16), make(chan int, 16), make(chan int, 16)}
	start := time.Now()
	go func() {
		for i := 0; i < n; i++ {
			chans[i%4] <- i
		}
	}()
	for i := 0; i < n; i++ {
		select {
		case <-chans[0]:
		case <-chans[1]:
		case <-chans[2]:
		case <-chans[3]:
		}
	}
	return metrics{"us/value": perMicro(n, time.Since(start))}
}

func mutexUncontended(scale float64) metrics {
	n := count(20000000, scale, 100000)
	var mu sync.Mutex
	start := time.Now()
	for i := 0; i < n; i++ {
		mu.Lock()
		mu.Unlock()
	}
	return metrics{"ns/lock+unlock": float64(time.Since(start).Nanoseconds()) / float64(n)}
}

// starvation is the lessons' experiment: worker 1 holds the lock for `hold`
// with no gap between holds; worker 2 sleeps `hold` then takes the lock once.
func starvation(scale float64, hold, total time.Duration) metrics {
	total = time.Duration(float64(total) * scale)
	if total < 20*hold {
		total = 20 * hold
	}
	alone := worker2Alone(hold, total)
	var mu sync.Mutex
	var w1, w2 int
	var waits []time.Duration
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			mu.Lock()
			time.Sleep(hold)
			mu.Unlock()
			w1++
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			time.Sleep(hold)
			t0 := time.Now()
			mu.Lock()
			waits = append(waits, time.Since(t0))
			mu.Unlock()
			w2++
		}
	}()
	time.Sleep(total)
	close(done)
	wg.Wait()
	sort.Slice(waits, func(i, j int) bool { return waits[i] < waits[j] })
	p99 := 0.0
	if len(waits) > 0 {
		p99 = float64(waits[(len(waits)*99)/100].Microseconds()) / 1e3
	}
	return metrics{
		"worker 2 share %": 100 * float64(w2) / float64(alone),
		"w1_acq":           float64(w1),
		"w2_acq":           float64(w2),
		"w2 p99 wait ms":   p99,
	}
}

func worker2Alone(hold, total time.Duration) int {
	var mu sync.Mutex
	n := 0
	for deadline := time.Now().Add(total); time.Now().Before(deadline); n++ {
		time.Sleep(hold)
		mu.Lock()
		mu.Unlock()
	}
	return n
}

type config struct{ a, b, c int }

func readers(scale float64, read func() int) metrics {
	d := time.Duration(float64(time.Second) * scale)
	if d < 100*time.Millisecond {
		d = 100 * time.Millisecond
	}
	var stop atomic.Bool
	var total atomic.Int64
	var wg sync.WaitGroup
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := int64(0)
			for !stop.Load() {
				read()
				n++
			}
			total.Add(n)
		}()
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	return metrics{"reads/s": float64(total.Load()) / d.Seconds()}
}

func atomicValueReads(scale float64) metrics {
	var v atomic.Value
	v.Store(&config{})
	stop := make(chan struct{})
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
				v.Store(&config{i, i, i})
			}
		}
	}()
	defer close(stop)
	return readers(scale, func() int { return v.Load().(*config).a })
}

func rwmutexReads(scale float64) metrics {
	var mu sync.RWMutex
	cfg := &config{}
	stop := make(chan struct{})
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
				mu.Lock()
				cfg = &config{i, i, i}
				mu.Unlock()
			}
		}
	}()
	defer close(stop)
	return readers(scale, func() int {
		mu.RLock()
		a := cfg.a
		mu.RUnlock()
		return a
	})
}

func goroutines(scale float64) metrics {
	n := count(100000, scale, 1000)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	release := make(chan struct{})
	var started, finished sync.WaitGroup
	t0 := time.Now()
	started.Add(n)
	finished.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			started.Done()
			<-release
			finished.Done()
		}()
	}
	started.Wait()
	runtime.ReadMemStats(&after)
	close(release)
	finished.Wait()
	elapsed := time.Since(t0)
	// What the parked goroutines hold: their stacks and whatever heap they took. (The
	// runtime reuses the descriptors of goroutines that ended earlier, about 400 bytes
	// each, so those are not counted after the first repetition; runtime.GC above frees
	// their cached stacks, which are.)
	used := int64(after.StackInuse) - int64(before.StackInuse) +
		int64(after.HeapInuse) - int64(before.HeapInuse)
	return metrics{
		"us/goroutine":    perMicro(n, elapsed),
		"bytes/goroutine": float64(used) / float64(n),
	}
}

func ctxTree(scale float64) metrics {
	n := count(100000, scale, 1000)
	root, cancel := context.WithCancel(context.Background())
	nodes := []context.Context{root}
	cancels := []context.CancelFunc{cancel}
	for len(nodes) < n {
		parent := nodes[len(nodes)/10] // a wide tree: each node has about ten children
		ctx, c := context.WithCancel(parent)
		nodes = append(nodes, ctx)
		cancels = append(cancels, c)
	}
	t0 := time.Now()
	cancel()
	for _, ctx := range nodes {
		<-ctx.Done()
	}
	elapsed := time.Since(t0)
	for _, c := range cancels {
		c()
	}
	return metrics{"ms/tree": float64(elapsed.Microseconds()) / 1e3}
}
