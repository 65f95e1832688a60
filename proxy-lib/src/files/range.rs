//! `Range: bytes=...` for a file of known length. One range is served as
//! 206; a list of ranges is answered with the whole file (RFC 9110 lets a
//! server ignore Range), and so is a header that does not parse.

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ranged {
    Whole,
    /// Inclusive byte positions.
    Part(u64, u64),
    Unsatisfiable,
}

pub(crate) fn parse(header: &str, len: u64) -> Ranged {
    let Some((unit, spec)) = header.split_once('=') else {
        return Ranged::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return Ranged::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ranged::Whole;
    };
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.is_empty(), number(first), number(last)) {
        (true, _, Some(0)) => Ranged::Unsatisfiable,
        (true, _, Some(_)) if len == 0 => Ranged::Unsatisfiable,
        (true, _, Some(suffix)) => Ranged::Part(len.saturating_sub(suffix), len - 1),
        (false, Some(start), _) if start >= len => Ranged::Unsatisfiable,
        (false, Some(start), None) if last.is_empty() => Ranged::Part(start, len - 1),
        (false, Some(start), Some(end)) if end >= start => Ranged::Part(start, end.min(len - 1)),
        _ => Ranged::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse() {
        let cases = [
            ("bytes=0-9", 100, Ranged::Part(0, 9)),
            ("bytes=90-", 100, Ranged::Part(90, 99)),
            ("bytes=-10", 100, Ranged::Part(90, 99)),
            ("bytes=-1000", 100, Ranged::Part(0, 99)),
            ("bytes=50-1000", 100, Ranged::Part(50, 99)),
            ("bytes=100-", 100, Ranged::Unsatisfiable),
            ("bytes=-0", 100, Ranged::Unsatisfiable),
            ("bytes=0-", 0, Ranged::Unsatisfiable),
            ("bytes=5-1", 100, Ranged::Whole),
            ("bytes=0-1,5-6", 100, Ranged::Whole),
            ("items=0-1", 100, Ranged::Whole),
            ("bytes=x-1", 100, Ranged::Whole),
        ];
        for (header, len, want) in cases {
            assert_eq!(parse(header, len), want, "{header} of {len}");
        }
    }
}
