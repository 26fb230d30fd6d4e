//go:build !linux

package buffer

// startPageout does nothing outside Linux: MADV_PAGEOUT and /proc/self/maps
// are Linux's (see pageout_linux.go).
func (s *Store) startPageout(dir string) {}
