package files

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// errConflict is returned by a conditional put whose object is no longer
// the version the caller read.
var errConflict = errors.New("object changed since it was read")

// The conditional operations of a store: the fence object is replaced only
// if it is still the version that was read (compare and swap).
//
//   - getTagged returns the object at key and a tag naming its version, or
//     errNotFound.
//   - putIf stores b under key only if the object's version is still tag
//     ("" means: only if there is none), and returns errConflict otherwise.

// getTagged reads a directory object; its tag is a hash of its contents.
func (s *dirStore) getTagged(ctx context.Context, key string) ([]byte, string, error) {
	b, err := s.get(ctx, key)
	if err != nil {
		return nil, "", err
	}
	return b, contentTag(b), nil
}

func contentTag(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// putIf compares and replaces under an exclusive flock(2) on a lock file
// beside the object, which every writer on this host takes for the same
// compare and rename: the comparison and the rename cannot interleave
// with another writer's. flock holds between processes on one host; on a
// network file system it may not (see docs/SINK_FILES.md).
func (s *dirStore) putIf(ctx context.Context, key string, b []byte, tag string) error {
	dst := s.path(key)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	lf, err := os.OpenFile(dst+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("put %s: lock: %w", key, err)
	}
	defer lf.Close()
	if err := flock(ctx, lf); err != nil {
		return fmt.Errorf("put %s: lock: %w", key, err)
	}
	defer func() { _ = syscall.Flock(int(lf.Fd()), syscall.LOCK_UN) }()
	cur, err := os.ReadFile(dst)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if tag != "" {
			return errConflict
		}
	case err != nil:
		return fmt.Errorf("put %s: %w", key, err)
	case tag == "" || contentTag(cur) != tag:
		return errConflict
	}
	if err := s.write(dst, bytes.NewReader(b)); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return syncDir(filepath.Dir(dst))
}

// flock takes an exclusive lock on f, giving up when ctx ends.
func flock(ctx context.Context, f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return err
		}
		if err := sleepCtx(ctx, 2); err != nil {
			return err
		}
	}
}

// getTagged reads an S3 object with its ETag.
func (s *s3Store) getTagged(ctx context.Context, key string) ([]byte, string, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.prefix + key)})
	if err != nil {
		var nsk *s3types.NoSuchKey
		var nf *s3types.NotFound
		if errors.As(err, &nsk) || errors.As(err, &nf) {
			return nil, "", errNotFound
		}
		return nil, "", fmt.Errorf("get %s: %w", s.location(key), err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, "", fmt.Errorf("get %s: %w", s.location(key), err)
	}
	return b, aws.ToString(out.ETag), nil
}

// putIf is a conditional PutObject: If-Match the ETag read, or
// If-None-Match "*" for an object that must not exist yet. S3 answers 412
// Precondition Failed when the object changed, and 409 Conflict when
// another conditional write of the same key is in flight.
func (s *s3Store) putIf(ctx context.Context, key string, b []byte, tag string) error {
	in := &s3.PutObjectInput{
		Bucket: aws.String(s.bucket), Key: aws.String(s.prefix + key),
		Body: bytes.NewReader(b), ContentLength: aws.Int64(int64(len(b))),
	}
	if s.unconditional {
		// The store ignores or refuses conditional writes (probeConditional).
	} else if tag == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(tag)
	}
	_, err := s.client.PutObject(ctx, in)
	if err != nil {
		var re *awshttp.ResponseError
		if errors.As(err, &re) {
			switch re.HTTPStatusCode() {
			case http.StatusPreconditionFailed, http.StatusConflict:
				return errConflict
			}
		}
		return fmt.Errorf("put %s: %w", s.location(key), err)
	}
	return nil
}

// sleepCtx waits ms milliseconds or until ctx ends.
func sleepCtx(ctx context.Context, ms int) error {
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// probeConditional checks that the bucket honours If-None-Match on
// PutObject: it creates a probe object, tries to create it again, which
// must fail, and deletes it. A store that accepts the second put ignores
// the condition; one that rejects the header (501) does not support it.
// Either way the writer then writes the fence object unconditionally, and
// the fence can no longer stop a member that lost its partitions from
// committing: it is logged at Open (see docs/SINK_FILES.md).
func (s *s3Store) probeConditional(ctx context.Context) (ok bool, err error) {
	key := internalDir + "/fence/.probe-" + newToken()
	defer func() { _ = s.remove(context.WithoutCancel(ctx), []string{key}) }()
	if err := s.putIf(ctx, key, []byte("probe\n"), ""); err != nil {
		var re *awshttp.ResponseError
		if errors.As(err, &re) && (re.HTTPStatusCode() == http.StatusNotImplemented || re.HTTPStatusCode() == http.StatusBadRequest) {
			return false, nil
		}
		return false, err
	}
	switch err := s.putIf(ctx, key, []byte("probe\n"), ""); {
	case errors.Is(err, errConflict):
		return true, nil
	case err == nil:
		return false, nil
	default:
		return false, err
	}
}
