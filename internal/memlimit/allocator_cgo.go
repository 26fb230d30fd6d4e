//go:build linux && cgo

package memlimit

/*
#cgo LDFLAGS: -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

typedef int (*hw_mallctl_fn)(const char *, void *, size_t *, void *, size_t);

// The binary links DuckDB's jemalloc with its symbols exported
// (-rdynamic), under the prefix duckdb_je_; dlsym finds it without a
// link-time dependency, and finds nothing in a binary without DuckDB.
static hw_mallctl_fn hw_mallctl(void) {
	return (hw_mallctl_fn)dlsym(RTLD_DEFAULT, "duckdb_je_mallctl");
}

static int hw_have(void) { return hw_mallctl() != NULL; }

static int hw_set_ssize(const char *name, ssize_t v) {
	hw_mallctl_fn f = hw_mallctl();
	if (f == NULL) return ENOENT;
	return f(name, NULL, NULL, &v, sizeof v);
}

static int hw_call(const char *name) {
	hw_mallctl_fn f = hw_mallctl();
	if (f == NULL) return ENOENT;
	return f(name, NULL, NULL, NULL, 0);
}

static int hw_get_unsigned(const char *name, unsigned *out) {
	hw_mallctl_fn f = hw_mallctl();
	if (f == NULL) return ENOENT;
	size_t sz = sizeof *out;
	return f(name, out, &sz, NULL, 0);
}

static int hw_get_ssize(const char *name, ssize_t *out) {
	hw_mallctl_fn f = hw_mallctl();
	if (f == NULL) return ENOENT;
	size_t sz = sizeof *out;
	return f(name, out, &sz, NULL, 0);
}

static int hw_get_size(const char *name, size_t *out) {
	hw_mallctl_fn f = hw_mallctl();
	if (f == NULL) return ENOENT;
	size_t sz = sizeof *out;
	return f(name, out, &sz, NULL, 0);
}

// hw_set_decay sets dirty_decay_ms to dirty and muzzy_decay_ms to muzzy
// for the arenas created from now on and for every arena that exists (an
// index without an arena answers EFAULT, which is skipped). It returns the
// first error.
static int hw_set_decay(ssize_t dirty, ssize_t muzzy) {
	int err;
	if ((err = hw_set_ssize("arenas.dirty_decay_ms", dirty)) != 0) return err;
	if ((err = hw_set_ssize("arenas.muzzy_decay_ms", muzzy)) != 0) return err;
	unsigned n = 0;
	if ((err = hw_get_unsigned("arenas.narenas", &n)) != 0) return err;
	char name[64];
	for (unsigned i = 0; i < n; i++) {
		snprintf(name, sizeof name, "arena.%u.dirty_decay_ms", i);
		err = hw_set_ssize(name, dirty);
		if (err != 0 && err != EFAULT) return err;
		snprintf(name, sizeof name, "arena.%u.muzzy_decay_ms", i);
		err = hw_set_ssize(name, muzzy);
		if (err != 0 && err != EFAULT) return err;
	}
	return 0;
}

// hw_stats refreshes jemalloc's statistics (epoch) and reads the totals
// over all arenas.
static int hw_stats(size_t *allocated, size_t *resident, size_t *pdirty, size_t *pmuzzy, size_t *page) {
	hw_mallctl_fn f = hw_mallctl();
	if (f == NULL) return ENOENT;
	uint64_t epoch = 1;
	size_t sz = sizeof epoch;
	int err;
	if ((err = f("epoch", &epoch, &sz, &epoch, sz)) != 0) return err;
	if ((err = hw_get_size("stats.allocated", allocated)) != 0) return err;
	if ((err = hw_get_size("stats.resident", resident)) != 0) return err;
	if ((err = hw_get_size("stats.arenas.4096.pdirty", pdirty)) != 0) return err;
	if ((err = hw_get_size("stats.arenas.4096.pmuzzy", pmuzzy)) != 0) return err;
	return hw_get_size("arenas.page", page);
}
*/
import "C"

import (
	"fmt"
	"syscall"
	"unsafe"
)

func setDuckDBDecay(ms int64) error { return setDuckDBDecays(ms, ms) }

func setDuckDBDecays(dirty, muzzy int64) error {
	if C.hw_have() == 0 {
		return ErrNoDuckDBAllocator
	}
	if rc := C.hw_set_decay(C.ssize_t(dirty), C.ssize_t(muzzy)); rc != 0 {
		return fmt.Errorf("DuckDB jemalloc: set decay to %d / %d ms: %w", dirty, muzzy, syscall.Errno(rc))
	}
	if dirty == 0 {
		// Pages freed before the change stay until the next decay tick of
		// their arena; purge them now.
		name := C.CString("arena.4096.purge") // MALLCTL_ARENAS_ALL
		defer C.free(unsafe.Pointer(name))
		if rc := C.hw_call(name); rc != 0 {
			return fmt.Errorf("DuckDB jemalloc: purge: %w", syscall.Errno(rc))
		}
	}
	return nil
}

func duckDBAllocatorStats() (AllocatorStats, error) {
	if C.hw_have() == 0 {
		return AllocatorStats{}, ErrNoDuckDBAllocator
	}
	var allocated, resident, pdirty, pmuzzy, page C.size_t
	if rc := C.hw_stats(&allocated, &resident, &pdirty, &pmuzzy, &page); rc != 0 {
		return AllocatorStats{}, fmt.Errorf("DuckDB jemalloc: statistics: %w", syscall.Errno(rc))
	}
	return AllocatorStats{
		Allocated: int64(allocated),
		Resident:  int64(resident),
		Dirty:     int64(pdirty) * int64(page),
		Muzzy:     int64(pmuzzy) * int64(page),
	}, nil
}

func duckDBDecays() (dirty, muzzy int64, err error) {
	if C.hw_have() == 0 {
		return 0, 0, ErrNoDuckDBAllocator
	}
	var d, m C.ssize_t
	for _, v := range []struct {
		name string
		out  *C.ssize_t
	}{{"arenas.dirty_decay_ms", &d}, {"arenas.muzzy_decay_ms", &m}} {
		name := C.CString(v.name)
		rc := C.hw_get_ssize(name, v.out)
		C.free(unsafe.Pointer(name))
		if rc != 0 {
			return 0, 0, fmt.Errorf("DuckDB jemalloc: read %s: %w", v.name, syscall.Errno(rc))
		}
	}
	return int64(d), int64(m), nil
}
