# The two set-up commands (see README): `make run` and `make test`.
.PHONY: run test install bench bench-gui bench-backup bench-tmux bench-cluster bench-approvals bench-soak
run:
	./scripts/run.sh
test:
	./scripts/test.sh
install:
	./scripts/install.sh
bench:
	cargo bench --locked --bench pipeline
	cargo bench --locked --bench discord
	cargo bench --locked --bench http
bench-gui:
	./scripts/bench-gui.sh
bench-backup:
	./scripts/bench-backup.sh
bench-tmux:
	cargo bench --locked --bench tmux
bench-cluster:
	cargo bench --locked --bench cluster
bench-approvals:
	cargo bench --locked --bench approvals
bench-soak:
	cargo build --locked --release --bin acp
	cargo bench --locked --bench soak
