// Package deploy holds no code: it is the directory of highwater's
// deployment files (the docker compose stack's CockroachDB init, workload and
// topic scripts, the Prometheus configuration, and Grafana's provisioning
// and dashboard), and its tests check that those files, docker-compose.yml,
// the Dockerfile and examples/ agree with what the highwater binary accepts
// and exports, so that they cannot drift apart.
package deploy
