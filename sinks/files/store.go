package files

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// errNotFound is returned by store.get for a missing object.
var errNotFound = errors.New("object not found")

// store is where the writer puts objects: a local directory or an S3
// bucket prefix. Keys are slash-separated paths relative to the root.
// Every put is atomic for readers: an object is either absent or whole.
type store interface {
	// putFile stores the local file at src under key. The store may move
	// src away; the caller must not use it afterwards.
	putFile(ctx context.Context, key, src string) error
	// put stores b under key.
	put(ctx context.Context, key string, b []byte) error
	// get returns the object at key, or errNotFound.
	get(ctx context.Context, key string) ([]byte, error)
	// list returns the keys that start with prefix, sorted.
	list(ctx context.Context, prefix string) ([]string, error)
	// remove deletes keys; a missing key is not an error.
	remove(ctx context.Context, keys []string) error
	// location renders key for messages and for readers (a path or an
	// s3:// URL).
	location(key string) string
	// getTagged and putIf are get and put as compare and swap; see
	// conditional.go.
	getTagged(ctx context.Context, key string) ([]byte, string, error)
	putIf(ctx context.Context, key string, b []byte, tag string) error
}

// dirStore is a store in a local directory. Objects are written to a
// temporary file in the same file system, synced, and renamed into place,
// so that a reader (or a crash) never sees half an object.
type dirStore struct {
	root string
	tmp  string
}

func newDirStore(root string) (*dirStore, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("directory %q: %w", root, err)
	}
	s := &dirStore{root: abs, tmp: filepath.Join(abs, internalDir, "tmp")}
	if err := os.MkdirAll(s.tmp, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", s.tmp, err)
	}
	return s, nil
}

func (s *dirStore) path(key string) string { return filepath.Join(s.root, filepath.FromSlash(key)) }

func (s *dirStore) location(key string) string { return s.path(key) }

func (s *dirStore) putFile(_ context.Context, key, src string) error {
	dst := s.path(key)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := syncFile(src); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := os.Rename(src, dst); err != nil {
		// src may live on another file system (a spill directory
		// elsewhere): copy it beside dst first.
		f, oerr := os.Open(src)
		if oerr != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
		defer f.Close()
		if err := s.write(dst, f); err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
		_ = os.Remove(src)
	}
	return syncDir(filepath.Dir(dst))
}

func (s *dirStore) put(_ context.Context, key string, b []byte) error {
	dst := s.path(key)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := s.write(dst, bytes.NewReader(b)); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return syncDir(filepath.Dir(dst))
}

// write copies r to a temporary file beside dst, syncs it and renames it.
func (s *dirStore) write(dst string, r io.Reader) error {
	f, err := os.CreateTemp(filepath.Dir(dst), ".hw-*.tmp")
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), dst)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}

func (s *dirStore) get(_ context.Context, key string) ([]byte, error) {
	b, err := os.ReadFile(s.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return b, nil
}

func (s *dirStore) list(_ context.Context, prefix string) ([]string, error) {
	// Walk only the deepest directory the prefix names.
	dir := prefix
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dir = prefix[:i]
	} else {
		dir = ""
	}
	var keys []string
	err := filepath.WalkDir(s.path(dir), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".hw-") {
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		if key := filepath.ToSlash(rel); strings.HasPrefix(key, prefix) {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	sort.Strings(keys)
	return keys, nil
}

func (s *dirStore) remove(_ context.Context, keys []string) error {
	for _, k := range keys {
		if err := os.Remove(s.path(k)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete %s: %w", k, err)
		}
	}
	return nil
}

func syncFile(name string) error {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir makes a rename durable: the manifest-last protocol relies on data
// files being on disk before the manifest that names them.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// s3Store is a store under a prefix of an S3 (or S3-compatible) bucket.
// PutObject is atomic: an object appears whole or not at all.
type s3Store struct {
	client *s3.Client
	bucket string
	prefix string // "" or ends with "/"
	// unconditional is set when the store does not honour conditional
	// writes (probeConditional).
	unconditional bool
}

// s3Config is what an s3:// URL says about the connection.
type s3Config struct {
	bucket, prefix   string
	region, endpoint string
	pathStyle        bool
}

func newS3Store(ctx context.Context, c s3Config) (*s3Store, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if c.region != "" {
		opts = append(opts, awsconfig.WithRegion(c.region))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		// S3 needs a region to sign requests; S3-compatible stores
		// accept any.
		cfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if c.endpoint != "" {
			o.BaseEndpoint = aws.String(c.endpoint)
		}
		o.UsePathStyle = c.pathStyle
		// Checksums only where S3 requires them: several S3-compatible
		// stores (GCS interoperability, older MinIO) reject the SDK's
		// default CRC32 trailers.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	prefix := strings.Trim(c.prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	return &s3Store{client: client, bucket: c.bucket, prefix: prefix}, nil
}

func (s *s3Store) location(key string) string { return "s3://" + s.bucket + "/" + s.prefix + key }

func (s *s3Store) putFile(ctx context.Context, key, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("put %s: %w", s.location(key), err)
	}
	defer func() {
		f.Close()
		_ = os.Remove(src)
	}()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("put %s: %w", s.location(key), err)
	}
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(s.bucket), Key: aws.String(s.prefix + key),
		Body: f, ContentLength: aws.Int64(st.Size()),
	})
	if err != nil {
		return fmt.Errorf("put %s: %w", s.location(key), err)
	}
	return nil
}

func (s *s3Store) put(ctx context.Context, key string, b []byte) error {
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(s.bucket), Key: aws.String(s.prefix + key),
		Body: bytes.NewReader(b), ContentLength: aws.Int64(int64(len(b))),
	})
	if err != nil {
		return fmt.Errorf("put %s: %w", s.location(key), err)
	}
	return nil
}

func (s *s3Store) get(ctx context.Context, key string) ([]byte, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.prefix + key)})
	if err != nil {
		var nsk *s3types.NoSuchKey
		var nf *s3types.NotFound
		if errors.As(err, &nsk) || errors.As(err, &nf) {
			return nil, errNotFound
		}
		return nil, fmt.Errorf("get %s: %w", s.location(key), err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", s.location(key), err)
	}
	return b, nil
}

func (s *s3Store) list(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(s.prefix + prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", s.location(prefix), err)
		}
		for _, o := range page.Contents {
			keys = append(keys, strings.TrimPrefix(aws.ToString(o.Key), s.prefix))
		}
	}
	sort.Strings(keys)
	return keys, nil
}

func (s *s3Store) remove(ctx context.Context, keys []string) error {
	// One DeleteObject per key: removals are rare (a crashed window's
	// files), and DeleteObjects needs checksums that not every
	// S3-compatible store accepts.
	for _, k := range keys {
		_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.prefix + k)})
		if err != nil {
			return fmt.Errorf("delete %s: %w", s.location(k), err)
		}
	}
	return nil
}
