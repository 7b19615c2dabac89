//! A sequence-classification (reward) model against transformers (testdata/models/llama-rm,
//! made by scripts/gen_reward_fixture.py: LlamaForSequenceClassification, 1 label, pad id 0):
//! scores of a right-padded batch within 1e-5, the pooled position by transformers' rule, and a
//! save that keeps score.weight.

use serde_json::Value;
use wick_model::reward::{score_position, sequence_scores};
use wick_model::Llama;
use wick_testkit::testdata;

fn ids(v: &Value) -> Vec<Vec<u32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        })
        .collect()
}

#[test]
fn reward_scores_match_transformers() {
    let dir = testdata("models/llama-rm");
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let model = Llama::load(&dir).unwrap();
    assert_eq!(model.config.num_labels(), Some(1));
    let pad = r["pad_token_id"].as_u64().unwrap() as u32;
    assert_eq!(model.config.pad_token_id, Some(pad));
    let padded = ids(&r["input_ids"]);
    let masks = ids(&r["attention_mask"]);
    for (i, row) in padded.iter().enumerate() {
        assert_eq!(
            score_position(row, pad) as u64,
            r["last_index"][i].as_u64().unwrap()
        );
    }
    // The unpadded sequences, batched here (right-padded inside).
    let rows: Vec<Vec<u32>> = padded
        .iter()
        .zip(&masks)
        .map(|(row, m)| {
            row.iter()
                .zip(m)
                .filter(|(_, &k)| k == 1)
                .map(|(&x, _)| x)
                .collect()
        })
        .collect();
    let refs: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
    let got = sequence_scores(&model, &refs, pad).unwrap();
    for (i, s) in got.iter().enumerate() {
        let want = r["scores"][i].as_f64().unwrap() as f32;
        assert!((s[0] - want).abs() < 1e-5, "row {i}: {} vs {want}", s[0]);
        // One at a time gives the same.
        let alone = sequence_scores(&model, &[refs[i]], pad).unwrap();
        assert!((alone[0][0] - s[0]).abs() < 1e-5);
    }
    // Saved and reloaded: the head travels as score.weight, no lm_head appears.
    let tmp = tempfile::tempdir().unwrap();
    model.save(tmp.path()).unwrap();
    let names: Vec<String> = model.named_tensors().into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"score.weight".to_string()));
    assert!(!names.contains(&"lm_head.weight".to_string()));
    let again = Llama::load(tmp.path()).unwrap();
    assert_eq!(sequence_scores(&again, &refs, pad).unwrap(), got);
    // A causal LM has no score head: a clear error.
    let lm = Llama::load(&testdata("models/llama-gqa")).unwrap();
    let err = sequence_scores(&lm, &refs, pad).unwrap_err().to_string();
    assert!(err.contains("not a sequence-classification model"), "{err}");
}
