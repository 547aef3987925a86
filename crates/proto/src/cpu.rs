//! What this build asks of the CPU. x86-64 builds are compiled with AES-NI
//! and PCLMULQDQ on (`.cargo/config.toml`): the AES, CMAC, AES-SIV and
//! POLYVAL code that NTS and v2's cookies run then uses those instructions
//! inline, at about half the cost of choosing them at run time block by
//! block (BENCHMARKS.md, "NTS"). On a CPU without them that code would die
//! of an illegal instruction, so each binary asks [`unsupported`] first and
//! says why it can't run instead.

/// The instruction sets this build uses without asking that the CPU lacks,
/// by their usual names; empty on every CPU a portable build runs on.
pub fn missing() -> Vec<&'static str> {
    #[allow(unused_mut)] // Nothing to push on a build that assumes nothing.
    let mut missing = Vec::new();
    // Not `is_x86_feature_detected!`: it answers yes at compile time for
    // a feature the build was compiled with, which is the question here.
    #[cfg(target_arch = "x86_64")]
    {
        // CPUID leaf 1, ECX: bit 25 AES-NI, bit 1 PCLMULQDQ. `__cpuid` is
        // safe since Rust 1.87, unsafe before (hora builds on 1.85).
        #[allow(unsafe_code, unused_unsafe)]
        // SAFETY: every x86-64 CPU has CPUID and its leaf 1.
        let ecx = unsafe { std::arch::x86_64::__cpuid(1) }.ecx;
        if cfg!(target_feature = "aes") && ecx & 1 << 25 == 0 {
            missing.push("AES-NI");
        }
        if cfg!(target_feature = "pclmulqdq") && ecx & 1 << 1 == 0 {
            missing.push("PCLMULQDQ");
        }
    }
    missing
}

/// Why this build can't run on this CPU, in one line for a binary named
/// `program` to print before it exits; `None` when it can.
pub fn unsupported(program: &str) -> Option<String> {
    explain(program, &missing())
}

fn explain(program: &str, missing: &[&str]) -> Option<String> {
    if missing.is_empty() {
        return None;
    }
    Some(format!(
        "{program}: this build needs a CPU with {}, which this one lacks; \
         build it for this CPU with `RUSTFLAGS= cargo build --release` (README, \"Requirements\")",
        missing.join(" and ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The machines that build and test hora have what the build assumes;
    /// on one that doesn't, this fails, as the binaries would refuse.
    #[test]
    fn the_build_machine_has_every_feature_the_build_assumes() {
        assert_eq!(missing(), Vec::<&str>::new());
        assert_eq!(unsupported("horad"), None);
    }

    #[test]
    fn a_missing_feature_is_named_with_the_way_out() {
        let line = explain("horad", &["AES-NI", "PCLMULQDQ"]).unwrap_or_default();
        assert!(line.starts_with("horad: this build needs a CPU with AES-NI and PCLMULQDQ"));
        assert!(line.contains("RUSTFLAGS= cargo build --release"));
        assert_eq!(explain("hora", &[]), None);
    }
}
