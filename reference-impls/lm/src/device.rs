//! Where a run computes and in what precision: `--device cpu|cuda|cuda:N` and `--precision f32|bf16`.
//!
//! Both are settings of a run (they sit in [`crate::trainer::TrainConfig`] and so in its `config.toml`), parsed
//! from and written as the strings a user types. Opening a device is where a CUDA request meets reality: a build without the
//! `cuda` feature, or a machine without a usable GPU, gets an error that says which and what to do.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use candle_core::{DType, Device};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A device as the user names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceSpec {
    #[default]
    Cpu,
    /// An NVIDIA GPU by ordinal (`cuda` is `cuda:0`).
    Cuda(usize),
}

impl DeviceSpec {
    /// Opens the device, or says why it cannot be used. A GPU is opened once per process: every later call returns
    /// the same device, so the models of one run (a policy and its reference, a base and its fine-tunes) can meet
    /// in one computation — candle refuses to combine tensors of two separately opened CUDA devices.
    pub fn open(self) -> Result<Device, DeviceError> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(_) if !cuda_built() => Err(DeviceError::NotBuilt { spec: self }),
            DeviceSpec::Cuda(ordinal) => {
                static OPENED: Mutex<BTreeMap<usize, Device>> = Mutex::new(BTreeMap::new());
                let mut opened = OPENED.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(device) = opened.get(&ordinal) {
                    return Ok(device.clone());
                }
                let device = Device::new_cuda(ordinal).map_err(|e| DeviceError::Unavailable {
                    spec: self,
                    reason: without_backtrace(e),
                })?;
                opened.insert(ordinal, device.clone());
                Ok(device)
            }
        }
    }
}

/// The message of a candle error, without the backtrace candle attaches when `RUST_BACKTRACE` is set.
fn without_backtrace(mut e: candle_core::Error) -> String {
    while let candle_core::Error::WithBacktrace { inner, .. } = e {
        e = *inner;
    }
    e.to_string()
}

/// Whether this build has candle's CUDA backend (`--features cuda`).
pub fn cuda_built() -> bool {
    cfg!(feature = "cuda")
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| {
                    format!("unknown device `{s}`: use cpu, cuda or cuda:N (N = the GPU's ordinal, from 0)")
                }),
        }
    }
}

/// The dtype of the forward and backward computation. Weights and optimizer state stay f32 either way: with
/// `bf16` each matmul, attention and activation runs in bf16 on a bf16 copy of the f32 master weights (the cast is
/// part of the graph, so gradients arrive in f32), while norms, softmax, logits and losses are computed in f32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    #[default]
    F32,
    Bf16,
}

impl Precision {
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        })
    }
}

impl FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(Precision::F32),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            _ => Err(format!("unknown precision `{}`: use f32 or bf16", s.trim())),
        }
    }
}

/// Both settings are written and read as the text a user types (`"cuda:0"`, `"bf16"`), in `config.toml` too.
macro_rules! serde_as_text {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?
                    .parse()
                    .map_err(serde::de::Error::custom)
            }
        }
    )*};
}

serde_as_text!(DeviceSpec, Precision);

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(
        "--device {spec}: this rice was built without CUDA. Build it with `cargo build --release --features cuda` \
         (README.md, \"Running on NVIDIA GPUs\", has the steps), or use --device cpu"
    )]
    NotBuilt { spec: DeviceSpec },
    #[error(
        "--device {spec}: no usable CUDA device ({reason}). Check that this machine has an NVIDIA GPU with that \
         ordinal and its driver (`nvidia-smi` lists them), or use --device cpu"
    )]
    Unavailable { spec: DeviceSpec, reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_and_print_as_typed() {
        for (text, spec, shown) in [
            ("cpu", DeviceSpec::Cpu, "cpu"),
            ("CUDA", DeviceSpec::Cuda(0), "cuda:0"),
            ("cuda:3", DeviceSpec::Cuda(3), "cuda:3"),
            (" gpu ", DeviceSpec::Cuda(0), "cuda:0"),
        ] {
            assert_eq!(text.parse::<DeviceSpec>(), Ok(spec), "{text}");
            assert_eq!(spec.to_string(), shown);
        }
        for bad in ["", "tpu", "cuda:", "cuda:-1", "cuda:x", "metal"] {
            let err = bad.parse::<DeviceSpec>().unwrap_err();
            assert!(err.contains("use cpu, cuda or cuda:N"), "{bad}: {err}");
        }
        assert_eq!("BF16".parse::<Precision>(), Ok(Precision::Bf16));
        assert!(
            "fp8"
                .parse::<Precision>()
                .unwrap_err()
                .contains("f32 or bf16")
        );
    }

    #[test]
    fn a_run_config_keeps_them_and_older_configs_read_as_cpu_f32() {
        let cfg = crate::trainer::TrainConfig {
            device: DeviceSpec::Cuda(1),
            precision: Precision::Bf16,
            ..crate::trainer::TrainConfig::default()
        };
        let text = toml::to_string(&cfg).unwrap();
        assert!(
            text.contains("device = \"cuda:1\"") && text.contains("precision = \"bf16\""),
            "{text}"
        );
        assert_eq!(
            toml::from_str::<crate::trainer::TrainConfig>(&text).unwrap(),
            cfg
        );
        let older: String = text
            .lines()
            .filter(|l| !l.starts_with("device") && !l.starts_with("precision"))
            .map(|l| format!("{l}\n"))
            .collect();
        let read: crate::trainer::TrainConfig = toml::from_str(&older).unwrap();
        assert_eq!(
            (read.device, read.precision),
            (DeviceSpec::Cpu, Precision::F32)
        );
        let bad = text.replace("\"cuda:1\"", "\"cuda:one\"");
        let err = toml::from_str::<crate::trainer::TrainConfig>(&bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown device `cuda:one`"), "{err}");
    }

    #[test]
    fn cuda_in_a_cpu_build_says_how_to_get_it() {
        if cuda_built() {
            return;
        }
        let err = DeviceSpec::Cuda(1).open().unwrap_err().to_string();
        assert!(
            err.starts_with("--device cuda:1: this rice was built without CUDA"),
            "{err}"
        );
        assert!(err.contains("--features cuda"), "{err}");
        assert!(DeviceSpec::Cpu.open().unwrap().is_cpu());
    }
}
