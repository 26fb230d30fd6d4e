package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/highwater-dev/highwater/config"
	"github.com/highwater-dev/highwater/internal/memlimit"
)

// memoryPlan resolves --memory-limit (empty: the cgroup limit found under
// root, "/" in production) and splits it.
func memoryPlan(cfg config.Config, root string) (memlimit.Plan, error) {
	total, err := cfg.MemoryLimitBytes()
	if err != nil {
		return memlimit.Plan{}, err
	}
	source := "memory-limit"
	if total < 0 {
		if total, source, err = memlimit.CgroupLimit(root); err != nil {
			return memlimit.Plan{}, err
		}
	}
	plan := memlimit.Split(total, runtime.NumCPU())
	if plan.Total > 0 {
		plan.Source = source
	}
	return plan, nil
}

// memoryHooks are what a memory plan asks of the processor.
type memoryHooks struct {
	// scan is the processor's Config.ScanMemory (nil for none).
	scan func() func()
	// lender, if not nil, lends the Go heap DuckDB's idle share; its Busy
	// is the processor's Config.Applying, and runPipeline runs it.
	lender *memlimit.Lender
}

// applying returns the processor's Config.Applying.
func (m memoryHooks) applying() func() func() {
	if m.lender == nil {
		return nil
	}
	return m.lender.Busy
}

// applyMemoryPlan sets the Go soft memory limit of plan, unless the
// operator set GOMEMLIMIT (any value; "off" for no limit), which the Go
// runtime has applied already, and logs the split. It returns what the
// plan asks of the processor.
func applyMemoryPlan(plan memlimit.Plan, getenv func(string) string, log *zap.Logger) memoryHooks {
	var mem memoryHooks
	goLimit := "GOMEMLIMIT=" + getenv("GOMEMLIMIT")
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(plan.GoSoftLimit)
		goLimit = strconv.FormatInt(plan.GoSoftLimit>>20, 10) + "MiB"
		// The operator's GOMEMLIMIT is left alone: the loan is made on top
		// of the plan's Go share only.
		mem.lender = memlimit.NewLender(plan)
	}
	if plan.Total > 0 && plan.Total < config.MinMemoryLimit {
		log.Warn("the memory limit is below what highwater needs (Badger alone holds ~80 MiB); expect a busy garbage collector or an OOM kill",
			zap.String("limit", fmt.Sprintf("%dMiB", plan.Total>>20)), zap.String("from", plan.Source), zap.String("minimum", "256MiB"))
	}
	if plan.Total == 0 {
		log.Info("no memory limit (none set, no cgroup limit): DuckDB keeps its defaults",
			zap.String("go_soft_limit", goLimit))
		return mem
	}
	var allocator string
	allocator, mem.scan = returnDuckDBFreed(plan, getenv, log)
	lend := "no"
	if mem.lender != nil {
		lend = fmt.Sprintf("up to %dMiB of DuckDB's share while no window is applied", mem.lender.Most()>>20)
	}
	log.Info("memory limit split", zap.String("limit", fmt.Sprintf("%dMiB", plan.Total>>20)), zap.String("from", plan.Source),
		zap.String("go_soft_limit", goLimit), zap.String("go_borrows", lend),
		zap.String("duckdb_memory_limit", fmt.Sprintf("%dMiB", plan.DuckDBMemory>>20)),
		zap.Int("duckdb_threads", plan.DuckDBThreads), zap.String("duckdb_allocator", allocator))
	return mem
}

// returnDuckDBFreed says what DuckDB's jemalloc does with the pages DuckDB
// frees, and returns the processor's Config.ScanMemory that makes it
// return them at once while an initial scan is applied (nil when plan does
// not ask for it, when the operator configured that allocator with
// DUCKDB_JE_MALLOC_CONF, read at the process's start, or when there is no
// such allocator). Not all the time: returning pages at once costs DuckDB
// page faults on every large allocation, about 13% more CPU per event end
// to end.
func returnDuckDBFreed(plan memlimit.Plan, getenv func(string) string, log *zap.Logger) (string, func() func()) {
	if conf := getenv("DUCKDB_JE_MALLOC_CONF"); conf != "" {
		return "DUCKDB_JE_MALLOC_CONF=" + conf, nil
	}
	if !plan.DuckDBReturnFreed {
		return "DuckDB's defaults", nil
	}
	if _, _, err := memlimit.DuckDBDecays(); err != nil {
		if !errors.Is(err, memlimit.ErrNoDuckDBAllocator) {
			log.Warn("DuckDB's allocator keeps the memory DuckDB frees for a while: it is not covered by the memory limit's split", zap.Error(err))
		}
		return "DuckDB's defaults", nil
	}
	return "freed pages returned at once while an initial scan is applied", func() func() {
		restore, err := memlimit.ReturnDuckDBFreed()
		if err != nil {
			log.Warn("DuckDB's allocator keeps the memory DuckDB frees during this scan", zap.Error(err))
		}
		return restore
	}
}

// withDuckDBLimits adds plan's DuckDB share to a duckdb:// sink URL as the
// memory_limit and threads options that DuckDB reads at open, unless the
// URL sets them itself. Other URLs, and a plan without a limit, are
// returned unchanged.
func withDuckDBLimits(rawURL string, plan memlimit.Plan) string {
	const scheme = "duckdb:"
	if plan.Total == 0 || len(rawURL) < len(scheme) || !strings.EqualFold(rawURL[:len(scheme)], scheme) {
		return rawURL
	}
	base, query, _ := strings.Cut(rawURL, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		return rawURL // duckdb.Open reports the bad query
	}
	has := func(name string) bool {
		for k := range q {
			if strings.EqualFold(k, name) {
				return true
			}
		}
		return false
	}
	var add []string
	if !has("memory_limit") && !has("max_memory") {
		add = append(add, "memory_limit="+strconv.FormatInt(plan.DuckDBMemory>>20, 10)+"MiB")
	}
	if !has("threads") && !has("worker_threads") {
		add = append(add, "threads="+strconv.Itoa(plan.DuckDBThreads))
	}
	if len(add) == 0 {
		return rawURL
	}
	if query != "" {
		add = append([]string{query}, add...)
	}
	return base + "?" + strings.Join(add, "&")
}

// logPeakMemory logs the kernel's high-water mark of this process's
// resident memory (VmHWM of /proc/self/status, Linux), once everything is
// closed: the figure a container's memory limit must cover. `highwater
// bench` reads it. A parent cannot get it from the rusage of the reaped
// child: Go starts children with vfork (CLONE_VM), and the kernel charges
// the parent's own high-water mark, at the exec, to the child's maxrss.
func logPeakMemory(log *zap.Logger) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err == nil {
				log.Info("peak memory", zap.Int64("vm_hwm_bytes", kb<<10), zap.String("vm_hwm", fmt.Sprintf("%.1fMiB", float64(kb)/1024)))
			}
			return
		}
	}
}
