#!/usr/bin/env bash
# The RLHF loop (make rlhf): STEPS times, the current policy continues a batch of training
# prompts (generate), the reward model scores them (rm-score), and ppo-step updates the policy
# against the frozen SFT model. Every EVAL_EVERY steps (and before the first) the policy also
# answers the held-out prompts greedily-free at a fixed seed, and their mean reward is logged
# as val_score. Writes OUT/metrics.jsonl (ppo-step's lines + the held-out evaluations) and
# OUT/curves.png.
#
#   scripts/rlhf.sh BIN SFT_MODEL REWARD_MODEL OUT [STEPS]
# Environment: BATCH (prompts per step, 32), NEW_TOKENS (32), EVAL_EVERY (5), PPO_ARGS (extra
# ppo-step flags), TRAIN_PROMPTS (testdata/pref/train.jsonl), HELDOUT (testdata/pref/prompts.jsonl).
set -euo pipefail
BIN=$1 SFT=$2 RM=$3 OUT=$4 STEPS=${5:-20}
BATCH=${BATCH:-32} NEW_TOKENS=${NEW_TOKENS:-32} EVAL_EVERY=${EVAL_EVERY:-5}
TRAIN_PROMPTS=${TRAIN_PROMPTS:-testdata/pref/train.jsonl}
HELDOUT=${HELDOUT:-testdata/pref/prompts.jsonl}
mkdir -p "$OUT"
: > "$OUT/metrics.jsonl"
total=$(grep -c . "$TRAIN_PROMPTS")
# Batch k takes every STRIDE-th prompt from offset k, so that each batch mixes the file's kinds
# (testdata/pref lists its Song ci prompts before its Shakespeare ones).
stride=$(( total / BATCH > 0 ? total / BATCH : 1 ))

mean_reward() { # mean of the "reward" fields of JSONL on stdin
    awk 'match($0, /"reward":-?[0-9.eE+-]+/) { s += substr($0, RSTART + 9, RLENGTH - 9); n++ }
         END { if (n) printf "%.6f", s / n; else print "nan" }'
}

heldout() { # step policy_args...
    local step=$1; shift
    local r
    r=$("$BIN/generate" "$@" --max-new-tokens "$NEW_TOKENS" --seed 7 --quiet "$HELDOUT" \
        | "$BIN/rm-score" --model "$RM" --truncate --quiet | mean_reward)
    echo "{\"step\":$step,\"val_score\":$r}" >> "$OUT/metrics.jsonl"
    echo "rlhf: step $step: mean reward on $(grep -c . "$HELDOUT") held-out prompts $r"
}

policy=(--model "$SFT")
heldout 0 "${policy[@]}"
prev=""
for ((k = 1; k <= STEPS; k++)); do
    awk -v s="$stride" -v k="$k" 'NR % s == k % s' "$TRAIN_PROMPTS" | head -n "$BATCH" > "$OUT/prompts-$k.jsonl"
    t0=$(date +%s.%N)
    "$BIN/generate" "${policy[@]}" --max-new-tokens "$NEW_TOKENS" --seed "$k" --quiet "$OUT/prompts-$k.jsonl" > "$OUT/rollouts-$k.jsonl"
    t1=$(date +%s.%N)
    "$BIN/rm-score" --model "$RM" --truncate --quiet "$OUT/rollouts-$k.jsonl" > "$OUT/scored-$k.jsonl"
    t2=$(date +%s.%N)
    if [[ -z "$prev" ]]; then from=(--model "$SFT"); else from=(--model "$prev"); fi
    # shellcheck disable=SC2086
    "$BIN/ppo-step" "${from[@]}" --ref-model "$SFT" -o "$OUT/policy-$k" --quiet ${PPO_ARGS:-} "$OUT/scored-$k.jsonl" > "$OUT/stats-$k.json"
    t3=$(date +%s.%N)
    # One line: ppo-step's statistics plus the time of each stage.
    sed "s/}\$/,\"generate_s\":$(awk "BEGIN{print $t1 - $t0}"),\"score_s\":$(awk "BEGIN{print $t2 - $t1}"),\"step_s\":$(awk "BEGIN{print $t3 - $t2}")}/" "$OUT/stats-$k.json" >> "$OUT/metrics.jsonl"
    tail -n 1 "$OUT/metrics.jsonl" | awk -v k="$k" '{
        match($0, /"score":-?[0-9.eE+-]+/); s = substr($0, RSTART + 8, RLENGTH - 8);
        match($0, /"kl":-?[0-9.eE+-]+/); kl = substr($0, RSTART + 5, RLENGTH - 5);
        printf "rlhf: step %d: rollout reward %.4f, KL %.4f\n", k, s, kl }'
    [[ -n "$prev" ]] && rm -rf "$prev"
    rm -f "$OUT/prompts-$k.jsonl"
    prev="$OUT/policy-$k"
    policy=(--model "$prev")
    if (( k % EVAL_EVERY == 0 || k == STEPS )); then heldout "$k" "${policy[@]}"; fi
done
rm -rf "$OUT/policy"
mv "$prev" "$OUT/policy"
"$BIN/plot" "$OUT/metrics.jsonl" -o "$OUT/curves.png" \
    --only score,kl,rlhf_reward,entropy,pg_loss,vf_loss,clipfrac,approx_kl,mean_response_len,generate_s,score_s,step_s
echo "rlhf: final policy in $OUT/policy, metrics in $OUT/metrics.jsonl, curves in $OUT/curves.png"
