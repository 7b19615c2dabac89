# wick — the two commands of the quick start are `make demo` and `make test`.
CARGO ?= cargo
BIN := target/release
DEMO := runs/demo
CORPUS := testdata/english.jsonl testdata/chinese.jsonl

.PHONY: all build cuda demo rlhf test bench fuzz fmt lint clean

all: build

build:
	$(CARGO) build --release --workspace

# The model tools with candle's CUDA backend (--device cuda), into target/cuda/release/ so that
# the CPU build in target/release/ stays as it is. Works on a machine without a GPU: when nvcc
# is not on PATH, scripts/cuda-build-env.sh puts a build-only CUDA toolchain from PyPI (nvcc,
# headers, link-time stubs of the driver libraries) in the git-ignored .cuda-build/; the GPU
# machine's own driver and CUDA libraries are the ones loaded at run time. CUDA_COMPUTE_CAP
# picks the GPU generation candle's kernels are compiled for (90: H100/H200, 80: A100); unset,
# the PyPI toolchain builds for 90 and a machine's own nvcc for its GPU (nvidia-smi).
CUDA_DIR := $(CURDIR)/.cuda-build
CUDA_TOOLS := train ppo-step ppl generate eval rm-score lora-merge
cuda:
	$(CARGO) fetch
	@if ! command -v nvcc >/dev/null && ! test -f $(CUDA_DIR)/env; then \
		mkdir -p $(CUDA_DIR) && bash scripts/cuda-build-env.sh $(CUDA_DIR) > $(CUDA_DIR)/env.out \
		&& tail -n 1 $(CUDA_DIR)/env.out > $(CUDA_DIR)/env; fi
	@if test -f $(CUDA_DIR)/env && ! command -v nvcc >/dev/null; then cat $(CUDA_DIR)/env; fi
	if test -f $(CUDA_DIR)/env && ! command -v nvcc >/dev/null; then \
		cap=$${CUDA_COMPUTE_CAP:-}; . $(CUDA_DIR)/env; export CUDA_COMPUTE_CAP=$${cap:-$$CUDA_COMPUTE_CAP}; fi; \
	$(CARGO) build --release --target-dir target/cuda $(foreach t,$(CUDA_TOOLS),-p $(t)) \
		--features "$(foreach t,$(CUDA_TOOLS),$(t)/cuda)"
	@echo "CUDA build of the model tools: target/cuda/release/ (--device cuda, cuda:N)"

# The pipeline end to end on testdata/: clean and filter, deduplicate, train a tokenizer,
# tokenize, pack, pretrain a small Llama (a few minutes on 2 cores), measure its perplexity,
# let it write a few lines, score it on a multiple-choice task and draw its training curves;
# then fine-tune it with LoRA on a small SFT task, merge the adapter and compare held-out
# response perplexity before and after; then train a reward model on testdata/pref and run a
# few PPO steps against it (make rlhf runs the longer loop).
DEMO_STEPS ?= 1500
# The reward model of the demo and of make rlhf, trained on the demo's SFT model.
REWARD_MODEL = rm -rf $(DEMO)/rm && $(BIN)/train --task reward --model $(DEMO)/sft-merged \
	--data testdata/pref/train.jsonl --val testdata/pref/heldout.jsonl -o $(DEMO)/rm
demo: build
	@mkdir -p $(DEMO)
	$(BIN)/filter --rejected $(DEMO)/rejected.jsonl $(CORPUS) > $(DEMO)/filtered.jsonl
	$(BIN)/dedup --removed $(DEMO)/duplicates.jsonl $(DEMO)/filtered.jsonl > $(DEMO)/clean.jsonl
	$(BIN)/tokenize train --vocab-size 4096 -o $(DEMO)/tokenizer/ $(DEMO)/clean.jsonl
	$(BIN)/tokenize --tokenizer $(DEMO)/tokenizer $(DEMO)/clean.jsonl > $(DEMO)/ids.jsonl
	$(BIN)/pack --tokenizer $(DEMO)/tokenizer --val-fraction 0.05 -o $(DEMO)/shards $(DEMO)/ids.jsonl
	$(BIN)/pack verify $(DEMO)/shards
	$(BIN)/pack info $(DEMO)/shards
	@echo "First document, decoded back from its ids:"
	@head -n 1 $(DEMO)/ids.jsonl | $(BIN)/tokenize decode --raw --tokenizer $(DEMO)/tokenizer | head -n 8
	rm -rf $(DEMO)/model
	$(BIN)/train --data $(DEMO)/shards --config nano --max-steps $(DEMO_STEPS) --eval-interval 250 -o $(DEMO)/model
	$(BIN)/ppl --model $(DEMO)/model --data $(DEMO)/shards
	@printf '%s\n' 'HAMLET:' 'KING HENRY:' '明月几时有' > $(DEMO)/prompts.txt
	$(BIN)/generate --model $(DEMO)/model --max-new-tokens 60 --temperature 0.8 --top-k 50 $(DEMO)/prompts.txt > $(DEMO)/samples.jsonl
	@echo "Samples (temperature 0.8, top-k 50; all fields in $(DEMO)/samples.jsonl):"
	@$(BIN)/generate --model $(DEMO)/model --max-new-tokens 60 --temperature 0.8 --top-k 50 --text --quiet $(DEMO)/prompts.txt
	@echo "Which line comes next? 40 Shakespeare contexts, 4 candidate lines each (chance: 0.25):"
	$(BIN)/eval --task choice --model $(DEMO)/model --quiet testdata/eval/choice/choice.jsonl
	$(BIN)/plot $(DEMO)/model/metrics.jsonl -o $(DEMO)/curves.png -o $(DEMO)/curves.svg
	@echo "Supervised fine-tuning (LoRA) on testdata/sft: Song ci openings from their tune name, Shakespeare speech continuations:"
	$(BIN)/tokenize --tokenizer $(DEMO)/model testdata/sft/train.jsonl > $(DEMO)/sft-ids.jsonl
	$(BIN)/pack --tokenizer $(DEMO)/model --val-fraction 0.05 -o $(DEMO)/sft-shards $(DEMO)/sft-ids.jsonl
	rm -rf $(DEMO)/sft-lora $(DEMO)/sft-merged
	$(BIN)/train --task sft --method lora --model $(DEMO)/model --data $(DEMO)/sft-shards -o $(DEMO)/sft-lora
	$(BIN)/lora-merge --model $(DEMO)/model --adapter $(DEMO)/sft-lora -o $(DEMO)/sft-merged
	@echo "Held-out response perplexity (70 records, responses only): the base, then the merged SFT model:"
	$(BIN)/ppl --model $(DEMO)/model --quiet testdata/sft/heldout.jsonl
	$(BIN)/ppl --model $(DEMO)/sft-merged --quiet testdata/sft/heldout.jsonl
	@echo "Reward model on testdata/pref (chosen = the true continuation); held-out pairwise accuracy, chance 0.5:"
	$(REWARD_MODEL)
	@echo "PPO against it, $(DEMO_PPO_STEPS) steps of generate -> rm-score -> ppo-step (make rlhf runs $(RLHF_STEPS)):"
	EVAL_EVERY=$(DEMO_PPO_STEPS) bash scripts/rlhf.sh $(BIN) $(DEMO)/sft-merged $(DEMO)/rm $(DEMO)/ppo $(DEMO_PPO_STEPS)

# RLHF on the demo's SFT model: a reward model on testdata/pref, then RLHF_STEPS iterations of
# generate -> rm-score -> ppo-step; held-out reward and KL in runs/demo/rlhf/metrics.jsonl and
# curves.png. Needs `make demo` first.
DEMO_PPO_STEPS ?= 3
RLHF_STEPS ?= 20
rlhf: build
	@test -d $(DEMO)/sft-merged || { echo "make rlhf starts from the demo's SFT model: run make demo first"; exit 1; }
	$(REWARD_MODEL)
	bash scripts/rlhf.sh $(BIN) $(DEMO)/sft-merged $(DEMO)/rm $(DEMO)/rlhf $(RLHF_STEPS)

test:
	$(CARGO) test --workspace

# Speed against the Python peers named in each issue (creates the git-ignored .venv).
bench:
	bash scripts/bench.sh

# Fuzzing, not part of make test or CI: every cargo-fuzz target of fuzz/ (JSONL, shards, model
# and adapter folders, chat templates, metrics logs) for FUZZ_SECONDS seconds each, with a
# summary per target; installs cargo-fuzz when missing (docs/fuzzing.md).
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
	rm -rf runs bench-data .cuda-build
