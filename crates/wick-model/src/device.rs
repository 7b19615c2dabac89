//! Where a model runs: `--device cpu|cuda|cuda:N`.
//!
//! On the CPU the ops run as the fused kernels of `kernels`; anywhere else (and on the CPU with
//! WICK_REFERENCE_OPS=1) as `kernels::reference`, candle's own ops, which candle's CUDA backend
//! runs on the GPU. CUDA is there only in a build with the `cuda` feature (`make cuda`).

use candle_core::Device;
use wick_io::{Error, Result};

/// The names `device` accepts, for help and errors.
pub const DEVICE_NAMES: &str = "cpu, cuda or cuda:N";

/// Whether this build can run on an NVIDIA GPU (the `cuda` feature).
pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

/// The device a `--device` name stands for: "cpu", "cuda" (GPU 0) or "cuda:N". The CUDA device
/// is opened here, so a machine without the driver or GPU N errs now, before anything is read;
/// open it once and clone it (candle tells devices apart by the handle, not the ordinal).
pub fn device(name: &str) -> Result<Device> {
    let ordinal = match name {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        _ => match name.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => {
                return Err(Error::msg(format!(
                    "unknown device '{name}' (expected {DEVICE_NAMES})"
                )))
            }
        },
    };
    if !CUDA_BUILT {
        return Err(Error::msg(
            "this build has no CUDA support; build with --features cuda (make cuda)",
        ));
    }
    Device::new_cuda(ordinal)
        .map_err(|e| Error::msg(format!("cannot open CUDA device {ordinal}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_the_cpu_and_bad_names_are_refused() {
        assert!(device("cpu").unwrap().is_cpu());
        for bad in [
            "gpu", "cuda:", "cuda:x", "cuda:-1", "CPU", "", "cuda0", "metal",
        ] {
            let e = device(bad).unwrap_err().to_string();
            assert_eq!(
                e,
                format!("unknown device '{bad}' (expected cpu, cuda or cuda:N)")
            );
        }
    }

    #[test]
    #[cfg(not(feature = "cuda"))]
    fn cuda_without_the_feature_says_how_to_get_it() {
        for name in ["cuda", "cuda:0", "cuda:3"] {
            assert_eq!(
                device(name).unwrap_err().to_string(),
                "this build has no CUDA support; build with --features cuda (make cuda)"
            );
        }
    }
}
