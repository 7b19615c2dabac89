//! wick's PPO, DPO and Bradley–Terry arithmetic against the numpy reference of
//! scripts/gen_rl_fixture.py (testdata/rl/fixture.json), which follows TRL's trainers.

use candle_core::{Device, Tensor};
use serde_json::Value;
use wick_rl::ppo::{self, Hyper, KlEstimator, Rollout};
use wick_rl::preference::{bradley_terry_loss, dpo_loss, dpo_rewards, PairStats};

fn fixture() -> Value {
    let path = wick_testkit::testdata("rl/fixture.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn vec1(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn vec2(v: &Value) -> Vec<Vec<f64>> {
    v.as_array().unwrap().iter().map(vec1).collect()
}

fn t(v: &[f64]) -> Tensor {
    Tensor::from_vec(
        v.iter().map(|&x| x as f32).collect::<Vec<f32>>(),
        v.len(),
        &Device::Cpu,
    )
    .unwrap()
}

fn scalar(t: &Tensor) -> f64 {
    t.to_scalar::<f32>().unwrap() as f64
}

fn close(what: &str, got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol * want.abs().max(1.0),
        "{what}: {got} vs numpy {want}"
    );
}

/// The valid (response) part of each row.
fn valid(rows: &[Vec<f64>], lengths: &[usize]) -> Vec<Vec<f64>> {
    rows.iter()
        .zip(lengths)
        .map(|(r, &l)| r[..l].to_vec())
        .collect()
}

#[test]
fn ppo_matches_numpy_for_both_estimators() {
    let f = fixture();
    let inp = &f["ppo"]["inputs"];
    let lengths: Vec<usize> = vec1(&inp["lengths"]).iter().map(|&x| x as usize).collect();
    let lp = valid(&vec2(&inp["logprobs"]), &lengths);
    let rlp = valid(&vec2(&inp["ref_logprobs"]), &lengths);
    let values = valid(&vec2(&inp["values"]), &lengths);
    let new_lp = valid(&vec2(&inp["new_logprobs"]), &lengths);
    let new_values = valid(&vec2(&inp["new_values"]), &lengths);
    let scores = vec1(&inp["scores"]);
    let has_eos: Vec<bool> = inp["has_eos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_bool().unwrap())
        .collect();
    let rollouts: Vec<Rollout> = (0..lengths.len())
        .map(|b| Rollout {
            logprobs: lp[b].clone(),
            ref_logprobs: rlp[b].clone(),
            values: values[b].clone(),
            score: scores[b],
            has_eos: has_eos[b],
        })
        .collect();
    for (name, estimator) in [("k1", KlEstimator::K1), ("k3", KlEstimator::K3)] {
        let want = &f["ppo"][name];
        let h = Hyper {
            kl_coef: inp["kl_coef"].as_f64().unwrap(),
            estimator,
            gamma: inp["gamma"].as_f64().unwrap(),
            lam: inp["lam"].as_f64().unwrap(),
            cliprange: inp["cliprange"].as_f64().unwrap(),
            cliprange_value: inp["cliprange_value"].as_f64().unwrap(),
            vf_coef: inp["vf_coef"].as_f64().unwrap(),
            missing_eos_penalty: inp["missing_eos_penalty"].as_f64(),
        };
        let got = ppo::targets(&rollouts, &h);
        for (field, ours) in [
            ("kl", &got.kl),
            ("rewards", &got.rewards),
            ("returns", &got.returns),
            ("advantages", &got.advantages),
        ] {
            let theirs = valid(&vec2(&want[field]), &lengths);
            for (b, (o, t)) in ours.iter().zip(&theirs).enumerate() {
                for (i, (x, y)) in o.iter().zip(t).enumerate() {
                    close(&format!("{name} {field}[{b}][{i}]"), *x, *y, 1e-9);
                }
            }
        }
        let raw = valid(&vec2(&want["advantages_raw"]), &lengths);
        for b in 0..lengths.len() {
            for i in 0..lengths[b] {
                close(
                    &format!("{name} advantages_raw[{b}][{i}]"),
                    got.returns[b][i] - values[b][i],
                    raw[b][i],
                    1e-9,
                );
            }
        }
        close(
            "scores",
            got.scores.iter().sum(),
            vec1(&f["ppo"]["common"]["scores_penalised"]).iter().sum(),
            1e-12,
        );
        close(
            "mean_kl",
            got.mean_kl,
            want["mean_kl"].as_f64().unwrap(),
            1e-9,
        );
        close(
            "mean_non_score_reward",
            got.mean_non_score_reward,
            want["mean_non_score_reward"].as_f64().unwrap(),
            1e-9,
        );
        // The losses run in f32 tensors, as in training.
        let flat = |x: &[Vec<f64>]| t(&x.concat());
        let (pg, pg_clip, approx_kl) = ppo::policy_loss(
            &flat(&new_lp),
            &flat(&lp),
            &flat(&got.advantages),
            h.cliprange,
        )
        .unwrap();
        let (vf, vf_clip) = ppo::value_loss(
            &flat(&new_values),
            &flat(&values),
            &flat(&got.returns),
            h.cliprange_value,
        )
        .unwrap();
        close(
            "pg_loss",
            scalar(&pg),
            want["pg_loss"].as_f64().unwrap(),
            1e-5,
        );
        close(
            "vf_loss",
            scalar(&vf),
            want["vf_loss"].as_f64().unwrap(),
            1e-5,
        );
        let loss = scalar(&pg) + h.vf_coef * scalar(&vf);
        close("loss", loss, want["loss"].as_f64().unwrap(), 1e-5);
        close(
            "pg_clipfrac",
            pg_clip,
            want["pg_clipfrac"].as_f64().unwrap(),
            1e-9,
        );
        close(
            "vf_clipfrac",
            vf_clip,
            want["vf_clipfrac"].as_f64().unwrap(),
            1e-9,
        );
        close(
            "approxkl",
            approx_kl,
            f["ppo"]["common"]["approxkl"].as_f64().unwrap(),
            1e-5,
        );
    }
}

#[test]
fn ppo_losses_have_gradients_where_unclipped() {
    // d pg / d new_logprobs = -A ratio / M where the unclipped term wins, 0 where clipping does.
    let new = candle_core::Var::new(&[0.0f32, 0.5, -0.5], &Device::Cpu).unwrap();
    let old = Tensor::new(&[0.0f32, 0.0, 0.0], &Device::Cpu).unwrap();
    let adv = Tensor::new(&[1.0f32, 1.0, 1.0], &Device::Cpu).unwrap();
    let (loss, clipfrac, _) = ppo::policy_loss(new.as_tensor(), &old, &adv, 0.2).unwrap();
    let g = loss.backward().unwrap();
    let g = g.get(new.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
    assert!((g[0] + 1.0 / 3.0).abs() < 1e-6, "{g:?}");
    assert_eq!(g[1], 0.0, "ratio e^0.5 > 1.2 with A > 0 is clipped: {g:?}");
    assert!((g[2] + (-0.5f32).exp() / 3.0).abs() < 1e-6, "{g:?}");
    assert!((clipfrac - 1.0 / 3.0).abs() < 1e-9);
}

#[test]
fn dpo_matches_numpy() {
    let f = fixture();
    let d = &f["dpo"];
    let i = &d["inputs"];
    let (pc, pr, rc, rr) = (
        vec1(&i["policy_chosen_logps"]),
        vec1(&i["policy_rejected_logps"]),
        vec1(&i["ref_chosen_logps"]),
        vec1(&i["ref_rejected_logps"]),
    );
    let beta = i["beta"].as_f64().unwrap();
    let loss = dpo_loss(&t(&pc), &t(&pr), &t(&rc), &t(&rr), beta).unwrap();
    close("dpo loss", scalar(&loss), d["loss"].as_f64().unwrap(), 1e-5);
    let (c, r) = (dpo_rewards(&pc, &rc, beta), dpo_rewards(&pr, &rr, beta));
    for (x, y) in c.iter().zip(vec1(&d["chosen_rewards"])) {
        close("chosen_rewards", *x, y, 1e-9);
    }
    for (x, y) in r.iter().zip(vec1(&d["rejected_rewards"])) {
        close("rejected_rewards", *x, y, 1e-9);
    }
    let s = PairStats::of(&c, &r);
    close(
        "accuracy",
        s.accuracy,
        d["reward_accuracy"].as_f64().unwrap(),
        1e-12,
    );
    close(
        "margin",
        s.margin,
        d["reward_margin"].as_f64().unwrap(),
        1e-9,
    );
}

#[test]
fn bradley_terry_matches_numpy() {
    let f = fixture();
    let d = &f["reward_model"];
    let i = &d["inputs"];
    let (c, r, m) = (
        vec1(&i["r_chosen"]),
        vec1(&i["r_rejected"]),
        vec1(&i["margin"]),
    );
    let with = bradley_terry_loss(&t(&c), &t(&r), Some(&t(&m))).unwrap();
    let without = bradley_terry_loss(&t(&c), &t(&r), None).unwrap();
    close("loss", scalar(&with), d["loss"].as_f64().unwrap(), 1e-5);
    close(
        "loss_no_margin",
        scalar(&without),
        d["loss_no_margin"].as_f64().unwrap(),
        1e-5,
    );
    close(
        "accuracy",
        PairStats::of(&c, &r).accuracy,
        d["accuracy"].as_f64().unwrap(),
        1e-12,
    );
}
