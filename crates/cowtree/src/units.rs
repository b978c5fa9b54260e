//! Byte counts for people: binary units (KiB, MiB, GiB, ...).

/// `n` bytes as e.g. "1.5 GiB" (plain "B" below 1 KiB).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A signed byte count (e.g. reclaimed space that came out negative).
pub fn signed_bytes(n: i64) -> String {
    if n < 0 {
        format!("-{}", bytes(n.unsigned_abs()))
    } else {
        bytes(n as u64)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn binary_units_round_to_one_decimal() {
        assert_eq!(super::bytes(0), "0 B");
        assert_eq!(super::bytes(1023), "1023 B");
        assert_eq!(super::bytes(1024), "1.0 KiB");
        assert_eq!(super::bytes(1536), "1.5 KiB");
        assert_eq!(super::bytes(10 << 30), "10.0 GiB");
        assert_eq!(super::signed_bytes(-2048), "-2.0 KiB");
    }
}
