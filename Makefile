# Front door for the project's commands; CI calls the same scripts (.ci/run).
.PHONY: help up down status env test lint fmt-check clippy shellcheck run ci clean-services

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

up: ## Start Kafka, kube-apiserver (+etcd, controller-manager) and PostgreSQL on 127.0.0.1
	scripts/services up

down: ## Stop the services started by `make up`
	scripts/services down

status: ## Show which services run, where, and their versions
	scripts/services status

env: ## Print the exports for the services: eval "$(make -s env)"
	@scripts/services env

test: ## Run every test against the real services (starts and stops them)
	scripts/test

fmt-check: ## Check formatting
	cargo fmt --check

clippy: ## Lint, warnings are errors
	cargo clippy --all-targets --all-features -- -D warnings

shellcheck: ## Lint the shell scripts
	shellcheck -x scripts/services scripts/services.d/*.sh scripts/helm scripts/quickstart scripts/render-manifests scripts/test .ci/run

lint: fmt-check clippy shellcheck ## Formatting and lints

run: ## Start the services and `reflex run` against them
	scripts/quickstart

ci: ## What CI runs: system packages, lint, tests
	.ci/run

clean-services: ## Stop the services and delete their data, logs and certificates
	scripts/services clean
