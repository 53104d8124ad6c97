# The two set-up commands (see README): `make run` and `make test`.
.PHONY: run test bench
run:
	./scripts/run.sh
test:
	./scripts/test.sh
bench:
	cargo bench --locked --bench pipeline
