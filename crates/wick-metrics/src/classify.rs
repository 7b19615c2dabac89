//! Classification metrics as scikit-learn reports them with `zero_division=0`: accuracy,
//! per-class precision/recall/F1/support, macro, micro and weighted averages, confusion matrix.

/// Everything `eval --task classification` reports. `labels` is the sorted union of the labels
/// seen in predictions and references (numerically when every label is a number), and indexes
/// `per_class` and both axes of `confusion` (rows: reference, columns: prediction).
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub n: u64,
    pub accuracy: f64,
    pub labels: Vec<String>,
    pub per_class: Vec<ClassScores>,
    pub macro_avg: Averages,
    pub micro_avg: Averages,
    pub weighted_avg: Averages,
    pub confusion: Vec<Vec<u64>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ClassScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Averages {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

fn divide(num: f64, den: f64) -> f64 {
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

/// The label order scikit-learn's `np.unique` gives: numeric when all labels are numbers.
fn sort_labels(labels: &mut [String]) {
    let numeric: Option<Vec<f64>> = labels.iter().map(|l| l.parse::<f64>().ok()).collect();
    match numeric {
        Some(_) => labels.sort_by(|a, b| {
            let (x, y) = (a.parse::<f64>().unwrap(), b.parse::<f64>().unwrap());
            x.total_cmp(&y).then_with(|| a.cmp(b))
        }),
        None => labels.sort(),
    }
}

/// `pairs` are (prediction, reference).
pub fn report<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)> + Clone) -> Report {
    let mut labels: Vec<String> = pairs
        .clone()
        .into_iter()
        .flat_map(|(p, r)| [p, r])
        .map(str::to_string)
        .collect();
    sort_labels(&mut labels);
    labels.dedup();
    let index = |l: &str| labels.iter().position(|x| x == l).expect("collected above");
    let k = labels.len();
    let mut confusion = vec![vec![0u64; k]; k];
    let mut n = 0u64;
    for (p, r) in pairs {
        confusion[index(r)][index(p)] += 1;
        n += 1;
    }
    let tp: Vec<f64> = (0..k).map(|i| confusion[i][i] as f64).collect();
    let true_sum: Vec<f64> = (0..k)
        .map(|i| confusion[i].iter().sum::<u64>() as f64)
        .collect();
    let pred_sum: Vec<f64> = (0..k)
        .map(|j| confusion.iter().map(|row| row[j]).sum::<u64>() as f64)
        .collect();
    let per_class: Vec<ClassScores> = (0..k)
        .map(|i| ClassScores {
            precision: divide(tp[i], pred_sum[i]),
            recall: divide(tp[i], true_sum[i]),
            // scikit-learn's form: 2 tp / (2 tp + fn + fp).
            f1: divide(2.0 * tp[i], true_sum[i] + pred_sum[i]),
            support: true_sum[i] as u64,
        })
        .collect();
    let mean = |f: &dyn Fn(&ClassScores) -> f64, weights: Option<&[f64]>| -> f64 {
        match weights {
            None => per_class.iter().map(f).sum::<f64>() / k.max(1) as f64,
            Some(w) => {
                let total: f64 = w.iter().sum();
                divide(per_class.iter().zip(w).map(|(c, w)| f(c) * w).sum(), total)
            }
        }
    };
    let averages = |weights: Option<&[f64]>| Averages {
        precision: mean(&|c| c.precision, weights),
        recall: mean(&|c| c.recall, weights),
        f1: mean(&|c| c.f1, weights),
    };
    let (tp_all, true_all, pred_all) = (
        tp.iter().sum::<f64>(),
        true_sum.iter().sum::<f64>(),
        pred_sum.iter().sum::<f64>(),
    );
    Report {
        n,
        accuracy: divide(tp_all, n as f64),
        labels: labels.clone(),
        macro_avg: averages(None),
        weighted_avg: averages(Some(&true_sum)),
        micro_avg: Averages {
            precision: divide(tp_all, pred_all),
            recall: divide(tp_all, true_all),
            f1: divide(2.0 * tp_all, true_all + pred_all),
        },
        per_class,
        confusion,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_confusion_by_hand() {
        // (prediction, reference)
        let pairs = [("a", "a"), ("b", "a"), ("b", "b"), ("c", "b"), ("a", "a")];
        let r = report(pairs.iter().copied());
        assert_eq!(r.labels, ["a", "b", "c"]);
        assert_eq!(
            r.confusion,
            vec![vec![2, 1, 0], vec![0, 1, 1], vec![0, 0, 0]]
        );
        assert!((r.accuracy - 0.6).abs() < 1e-15);
        assert_eq!(r.per_class[0].precision, 1.0);
        assert!((r.per_class[0].recall - 2.0 / 3.0).abs() < 1e-15);
        assert_eq!(r.per_class[2], ClassScores::default()); // never right, no support
        assert!((r.micro_avg.f1 - r.accuracy).abs() < 1e-15);
    }

    #[test]
    fn numeric_labels_sort_as_numbers() {
        let r = report([("10", "2"), ("2", "10")].iter().copied());
        assert_eq!(r.labels, ["2", "10"]);
    }
}
