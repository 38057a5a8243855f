//! Go's `fmt` and `strconv` formatting, as far as templates need it:
//! `%q` quoting, float formatting (`%v`, `%g`, `%e`, `%f`) and `printf`.
//!
//! Prometheus' outputs (`{{ $value }}` printing `1e+06`, `humanize` using
//! `%.4g`) depend on Go's exact float formatting, which differs from Rust's,
//! so it is reimplemented here on top of Rust's correctly rounded digits.

/// Go's `strconv.Quote`.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        push_escaped(&mut out, c, '"');
    }
    out.push('"');
    out
}

fn push_escaped(out: &mut String, c: char, q: char) {
    match c {
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        '\\' => out.push_str("\\\\"),
        c if c == q => {
            out.push('\\');
            out.push(c);
        }
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            out.push_str(&format!("\\x{:02x}", c as u32));
        }
        c if c.is_control() || is_unprintable(c) => {
            if (c as u32) < 0x10000 {
                out.push_str(&format!("\\u{:04x}", c as u32));
            } else {
                out.push_str(&format!("\\U{:08x}", c as u32));
            }
        }
        c => out.push(c),
    }
}

fn is_unprintable(c: char) -> bool {
    matches!(c as u32, 0x80..=0x9f | 0xad | 0x2028 | 0x2029 | 0xfeff)
}

/// Go's `strconv.QuoteRune` style single-quoted character.
fn quote_char(c: char) -> String {
    let mut out = String::from("'");
    push_escaped(&mut out, c, '\'');
    out.push('\'');
    out
}

/// The decimal digits of `|v|` (no trailing zeros) and the position of the
/// decimal point, like Go's `decimalSlice`; `sig` rounds to that many
/// significant digits, `None` gives the shortest round-tripping digits.
fn decimal(v: f64, sig: Option<usize>) -> (Vec<u8>, i32) {
    if v == 0.0 {
        return (Vec::new(), 0);
    }
    let s = match sig {
        Some(n) => format!("{:.*e}", n.max(1) - 1, v.abs()),
        None => format!("{:e}", v.abs()),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    while digits.last() == Some(&b'0') {
        digits.pop();
    }
    if digits.is_empty() {
        return (Vec::new(), 0);
    }
    (digits, exp + 1)
}

fn fmt_e(neg: bool, digits: &[u8], dp: i32, prec: usize, upper: bool) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    out.push(char::from(*digits.first().unwrap_or(&b'0')));
    if prec > 0 {
        out.push('.');
        for i in 1..=prec {
            out.push(char::from(*digits.get(i).unwrap_or(&b'0')));
        }
    }
    out.push(if upper { 'E' } else { 'e' });
    let exp = if digits.is_empty() { 0 } else { dp - 1 };
    out.push(if exp < 0 { '-' } else { '+' });
    let e = exp.unsigned_abs();
    if e < 10 {
        out.push('0');
    }
    out.push_str(&e.to_string());
    out
}

fn fmt_f(neg: bool, digits: &[u8], dp: i32, frac: usize) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if dp > 0 {
        for i in 0..dp as usize {
            out.push(char::from(*digits.get(i).unwrap_or(&b'0')));
        }
    } else {
        out.push('0');
    }
    if frac > 0 {
        out.push('.');
        for i in 0..frac as i32 {
            let idx = dp + i;
            let d = if idx < 0 {
                b'0'
            } else {
                *digits.get(idx as usize).unwrap_or(&b'0')
            };
            out.push(char::from(d));
        }
    }
    out
}

fn non_finite(v: f64) -> Option<String> {
    if v.is_nan() {
        Some("NaN".to_string())
    } else if v.is_infinite() {
        Some(if v > 0.0 { "+Inf" } else { "-Inf" }.to_string())
    } else {
        None
    }
}

/// Go's `%g` (`prec` = `None` is the shortest representation, as `%v`).
pub(crate) fn format_g(v: f64, prec: Option<usize>, upper: bool) -> String {
    if let Some(s) = non_finite(v) {
        return s;
    }
    let neg = v.is_sign_negative() && v != 0.0;
    let prec = prec.map(|p| p.max(1));
    let (digits, dp) = decimal(v, prec);
    let nd = digits.len() as i32;
    let shortest = prec.is_none();
    let mut p = prec.map_or(nd, |p| p as i32);
    let mut eprec = p;
    if !shortest && eprec > nd && nd >= dp {
        eprec = nd;
    }
    if shortest {
        eprec = 6;
    }
    let exp = dp - 1;
    if !digits.is_empty() && (exp < -4 || exp >= eprec) {
        if p > nd {
            p = nd;
        }
        return fmt_e(neg, &digits, dp, (p - 1).max(0) as usize, upper);
    }
    if p > dp {
        p = nd;
    }
    fmt_f(neg, &digits, dp, (p - dp).max(0) as usize)
}

/// Go's `%v` of a float64.
pub(crate) fn format_float_v(v: f64) -> String {
    format_g(v, None, false)
}

/// Go's `%e` with a precision (default 6).
pub(crate) fn format_e(v: f64, prec: usize, upper: bool) -> String {
    if let Some(s) = non_finite(v) {
        return s;
    }
    let neg = v.is_sign_negative() && v != 0.0;
    let (digits, dp) = decimal(v, Some(prec + 1));
    fmt_e(neg, &digits, dp, prec, upper)
}

/// Go's `%f` with a precision (default 6).
pub(crate) fn format_f(v: f64, prec: usize) -> String {
    if let Some(s) = non_finite(v) {
        return s;
    }
    // Rust's fixed-precision formatting is correctly rounded like Go's.
    format!("{:.*}", prec, v)
}

/// One parsed `%` directive.
#[derive(Default)]
struct Spec {
    plus: bool,
    minus: bool,
    sharp: bool,
    zero: bool,
    space: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

fn pad(s: String, spec: &Spec, numeric: bool) -> String {
    let Some(w) = spec.width else { return s };
    let len = s.chars().count();
    if len >= w {
        return s;
    }
    let fill = w - len;
    if spec.minus {
        return s + &" ".repeat(fill);
    }
    if spec.zero && numeric {
        let (sign, rest) = match s.strip_prefix(['-', '+']) {
            Some(r) => (&s[..1], r),
            None => ("", s.as_str()),
        };
        return format!("{sign}{}{rest}", "0".repeat(fill));
    }
    " ".repeat(fill) + &s
}

use super::value::Value;

fn bad_verb(verb: char, v: &Value) -> String {
    match v {
        Value::Missing | Value::Nil => format!("%!{verb}(<nil>)"),
        v => format!("%!{verb}({}={})", v.type_name(), v),
    }
}

fn sign(s: String, spec: &Spec, nonneg: bool) -> String {
    if nonneg && spec.plus {
        format!("+{s}")
    } else if nonneg && spec.space {
        format!(" {s}")
    } else {
        s
    }
}

fn format_int(i: i64, verb: char, spec: &Spec) -> Option<String> {
    let mag = i.unsigned_abs();
    let mut body = match verb {
        'd' | 'v' => mag.to_string(),
        'x' => format!("{mag:x}"),
        'X' => format!("{mag:X}"),
        'o' => format!("{mag:o}"),
        'O' => format!("0o{mag:o}"),
        'b' => format!("{mag:b}"),
        'c' => return char::from_u32(u32::try_from(i).ok()?).map(String::from),
        'q' => return char::from_u32(u32::try_from(i).ok()?).map(quote_char),
        'U' => return Some(format!("U+{:04X}", i)),
        _ => return None,
    };
    if let Some(p) = spec.prec
        && body.len() < p
    {
        body = "0".repeat(p - body.len()) + &body;
    }
    if spec.sharp {
        match verb {
            'x' => body = format!("0x{body}"),
            'X' => body = format!("0X{body}"),
            'o' => body = format!("0{body}"),
            _ => {}
        }
    }
    let s = if i < 0 { format!("-{body}") } else { body };
    Some(sign(s, spec, i >= 0))
}

fn format_float(v: f64, verb: char, spec: &Spec) -> Option<String> {
    let s = match verb {
        'v' | 'g' => format_g(v, spec.prec, false),
        'G' => format_g(v, spec.prec, true),
        'e' => format_e(v, spec.prec.unwrap_or(6), false),
        'E' => format_e(v, spec.prec.unwrap_or(6), true),
        'f' | 'F' => format_f(v, spec.prec.unwrap_or(6)),
        _ => return None,
    };
    let nonneg = !s.starts_with('-') && !s.starts_with('+');
    Some(sign(s, spec, nonneg))
}

fn format_str(s: &str, verb: char, spec: &Spec) -> Option<String> {
    let s: String = match spec.prec {
        Some(p) => s.chars().take(p).collect(),
        None => s.to_string(),
    };
    Some(match verb {
        's' | 'v' => s,
        'q' => {
            if spec.sharp && !s.contains('`') {
                format!("`{s}`")
            } else {
                quote(&s)
            }
        }
        'x' => s.bytes().map(|b| format!("{b:02x}")).collect(),
        'X' => s.bytes().map(|b| format!("{b:02X}")).collect(),
        _ => return None,
    })
}

/// Formats one argument for one verb.
fn format_arg(v: &Value, verb: char, spec: &Spec) -> String {
    let (out, numeric) = match v {
        Value::Int(i) => (format_int(*i, verb, spec), true),
        Value::Float(f) => (format_float(*f, verb, spec), true),
        Value::String(s) | Value::Html(s) => (format_str(s, verb, spec), false),
        Value::Bool(b) => (matches!(verb, 't' | 'v').then(|| b.to_string()), false),
        Value::List(l) if verb != 'v' && verb != 's' => {
            let parts: Vec<String> = l.items.iter().map(|i| format_arg(i, verb, spec)).collect();
            (Some(format!("[{}]", parts.join(" "))), false)
        }
        Value::Time(_) | Value::Duration(_) => (
            match verb {
                'v' | 's' => Some(v.to_string()),
                'q' => Some(quote(&v.to_string())),
                'd' => match v {
                    Value::Duration(d) => format_int(*d, 'd', spec),
                    _ => None,
                },
                _ => None,
            },
            false,
        ),
        Value::Missing | Value::Nil => ((verb == 'v').then(|| "<nil>".to_string()), false),
        other => (
            matches!(verb, 'v' | 's').then(|| {
                if verb == 'v' && spec.sharp {
                    format!("{other:?}")
                } else {
                    other.to_string()
                }
            }),
            false,
        ),
    };
    match out {
        Some(s) => pad(s, spec, numeric),
        None => bad_verb(verb, v),
    }
}

/// Go's `fmt.Sprintf`.
pub(crate) fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut argi = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '+' => spec.plus = true,
                '-' => spec.minus = true,
                '#' => spec.sharp = true,
                '0' => spec.zero = true,
                ' ' => spec.space = true,
                _ => break,
            }
            chars.next();
        }
        let mut star = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| -> Option<usize> {
            if chars.peek() == Some(&'*') {
                chars.next();
                let v = match args.get(argi) {
                    Some(Value::Int(i)) => usize::try_from(*i).ok(),
                    _ => None,
                };
                argi += 1;
                return v;
            }
            let mut n: Option<usize> = None;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                n = Some(n.unwrap_or(0) * 10 + d as usize);
                chars.next();
            }
            n
        };
        spec.width = star(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.prec = Some(star(&mut chars).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        if verb == 'T' {
            match args.get(argi) {
                Some(v) => out.push_str(&pad(v.type_name(), &spec, false)),
                None => out.push_str("%!T(MISSING)"),
            }
            argi += 1;
            continue;
        }
        match args.get(argi) {
            Some(v) => out.push_str(&format_arg(v, verb, &spec)),
            None => out.push_str(&format!("%!{verb}(MISSING)")),
        }
        argi += 1;
    }
    if argi < args.len() {
        let extra: Vec<String> = args[argi..]
            .iter()
            .map(|v| match v {
                Value::Missing | Value::Nil => "<nil>".to_string(),
                v => format!("{}={}", v.type_name(), v),
            })
            .collect();
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

/// Go's `fmt.Sprint`: spaces between operands when neither is a string.
pub(crate) fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        let is_str = a.as_str().is_some();
        if i > 0 && !is_str && args[i - 1].as_str().is_none() {
            out.push(' ');
        }
        out.push_str(&print_operand(a));
    }
    out
}

/// Go's `fmt.Sprintln`: spaces between all operands, then a newline.
pub(crate) fn sprintln(args: &[Value]) -> String {
    let parts: Vec<String> = args.iter().map(print_operand).collect();
    parts.join(" ") + "\n"
}

fn print_operand(v: &Value) -> String {
    match v {
        Value::Missing => "<nil>".to_string(),
        v => v.to_string(),
    }
}

use chrono::{DateTime, Datelike, FixedOffset, Timelike};

/// Go's zero `time.Time` (January 1, year 1, 00:00:00 UTC).
pub(crate) fn go_zero_time() -> DateTime<FixedOffset> {
    DateTime::<chrono::Utc>::MIN_UTC
        .with_year(1)
        .and_then(|t| t.with_month(1))
        .and_then(|t| t.with_day(1))
        .and_then(|t| t.with_hour(0))
        .and_then(|t| t.with_minute(0))
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(DateTime::<chrono::Utc>::MIN_UTC)
        .fixed_offset()
}

/// Go's `Time.String()`: `2006-01-02 15:04:05.999999999 -0700 MST`.
pub(crate) fn time_string(t: &DateTime<FixedOffset>) -> String {
    format_time(t, "2006-01-02 15:04:05.999999999 -0700 MST")
}

const LONG_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const LONG_DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Go's `Time.Format` with a reference-time layout (`2006-01-02 15:04:05`).
pub(crate) fn format_time(t: &DateTime<FixedOffset>, layout: &str) -> String {
    let mut out = String::new();
    let offset = t.offset().local_minus_utc();
    let zone = |colon: bool, secs: bool, z: bool| -> String {
        if z && offset == 0 {
            return "Z".to_string();
        }
        let sign = if offset < 0 { '-' } else { '+' };
        let o = offset.unsigned_abs();
        let (h, m, s) = (o / 3600, o / 60 % 60, o % 60);
        let mut r = format!("{sign}{h:02}");
        if colon {
            r.push_str(&format!(":{m:02}"));
            if secs {
                r.push_str(&format!(":{s:02}"));
            }
        } else {
            r.push_str(&format!("{m:02}"));
            if secs {
                r.push_str(&format!("{s:02}"));
            }
        }
        r
    };
    let hour12 = |h: u32| if h.is_multiple_of(12) { 12 } else { h % 12 };
    let mut rest = layout;
    while !rest.is_empty() {
        let tok: Option<(usize, String)> = 'tok: {
            for (pat, val) in [
                ("January", LONG_MONTHS[t.month0() as usize].to_string()),
                ("Jan", LONG_MONTHS[t.month0() as usize][..3].to_string()),
                (
                    "Monday",
                    LONG_DAYS[t.weekday().num_days_from_sunday() as usize].to_string(),
                ),
                (
                    "Mon",
                    LONG_DAYS[t.weekday().num_days_from_sunday() as usize][..3].to_string(),
                ),
                (
                    "MST",
                    if offset == 0 {
                        "UTC".to_string()
                    } else {
                        zone(false, false, false)
                    },
                ),
                ("2006", format!("{:04}", t.year())),
                ("002", format!("{:03}", t.ordinal())),
                ("__2", format!("{:>3}", t.ordinal())),
                ("01", format!("{:02}", t.month())),
                ("02", format!("{:02}", t.day())),
                ("03", format!("{:02}", hour12(t.hour()))),
                ("04", format!("{:02}", t.minute())),
                ("05", format!("{:02}", t.second())),
                ("06", format!("{:02}", t.year() % 100)),
                ("_2", format!("{:>2}", t.day())),
                ("15", format!("{:02}", t.hour())),
                ("1", t.month().to_string()),
                ("2", t.day().to_string()),
                ("3", hour12(t.hour()).to_string()),
                ("4", t.minute().to_string()),
                ("5", t.second().to_string()),
                ("PM", if t.hour() >= 12 { "PM" } else { "AM" }.to_string()),
                ("pm", if t.hour() >= 12 { "pm" } else { "am" }.to_string()),
                ("-07:00:00", zone(true, true, false)),
                ("-070000", zone(false, true, false)),
                ("-07:00", zone(true, false, false)),
                ("-0700", zone(false, false, false)),
                ("-07", zone(false, false, false)[..3].to_string()),
                ("Z07:00:00", zone(true, true, true)),
                ("Z070000", zone(false, true, true)),
                ("Z07:00", zone(true, false, true)),
                ("Z0700", zone(false, false, true)),
                (
                    "Z07",
                    zone(false, false, true).chars().take(3).collect::<String>(),
                ),
            ] {
                if rest.starts_with(pat) {
                    break 'tok Some((pat.len(), val));
                }
            }
            // Fractional seconds: ".000" (fixed) or ".999" (trimmed).
            let b = rest.as_bytes();
            if (b[0] == b'.' || b[0] == b',') && b.len() > 1 && (b[1] == b'0' || b[1] == b'9') {
                let d = b[1];
                let n = b[1..].iter().take_while(|&&c| c == d).count();
                if !b.get(1 + n).is_some_and(u8::is_ascii_digit) {
                    let nanos = format!("{:09}", t.nanosecond() % 1_000_000_000);
                    let mut frac = nanos[..n.min(9)].to_string();
                    if d == b'9' {
                        frac = frac.trim_end_matches('0').to_string();
                        if frac.is_empty() {
                            break 'tok Some((1 + n, String::new()));
                        }
                    }
                    break 'tok Some((1 + n, format!("{}{frac}", char::from(b[0]))));
                }
            }
            None
        };
        match tok {
            Some((len, val)) => {
                out.push_str(&val);
                rest = &rest[len..];
            }
            None => {
                let c = rest.chars().next().unwrap_or(' ');
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

/// Go's `Duration.String()` (`1h2m0.5s`, `100ms`, `0s`).
pub(crate) fn duration_string(d: i64) -> String {
    if d == 0 {
        return "0s".to_string();
    }
    let neg = d < 0;
    let u = d.unsigned_abs();
    let frac = |v: u64, digits: u32| -> String {
        let p = 10u64.pow(digits);
        let (w, f) = (v / p, v % p);
        if f == 0 {
            w.to_string()
        } else {
            let fs = format!("{:0width$}", f, width = digits as usize);
            format!("{w}.{}", fs.trim_end_matches('0'))
        }
    };
    let body = if u < 1_000 {
        format!("{u}ns")
    } else if u < 1_000_000 {
        format!("{}µs", frac(u, 3))
    } else if u < 1_000_000_000 {
        format!("{}ms", frac(u, 6))
    } else {
        let secs_ns = u % 60_000_000_000;
        let mins = u / 60_000_000_000;
        let (h, m) = (mins / 60, mins % 60);
        let s = format!("{}s", frac(secs_ns, 9));
        if h > 0 {
            format!("{h}h{m}m{s}")
        } else if m > 0 {
            format!("{m}m{s}")
        } else {
            s
        }
    };
    if neg { format!("-{body}") } else { body }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn floats_like_go() {
        for (v, want) in [
            (0.0, "0"),
            (1.0, "1"),
            (1.5, "1.5"),
            (1e6, "1e+06"),
            (123456.0, "123456"),
            (123456789.0, "1.23456789e+08"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (f64::INFINITY, "+Inf"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(format_float_v(v), want, "{v}");
        }
        for (v, want) in [
            (1234567.0, "1.235e+06"),
            (1.234567, "1.235"),
            (1.0, "1"),
            (120.00000000000001, "120"),
            (0.0, "0"),
            (-22.222, "-22.22"),
            (123456700.0, "1.235e+08"),
            (100.0, "100"),
            (9.223372036854776, "9.223"),
        ] {
            assert_eq!(format_g(v, Some(4), false), want, "{v}");
        }
    }

    #[test]
    fn sprintf_like_go() {
        let f = Value::Float(3720.01);
        assert_eq!(sprintf("%0.2f", std::slice::from_ref(&f)), "3720.01");
        assert_eq!(sprintf("%.2f%%", &[Value::Float(12.345)]), "12.35%");
        assert_eq!(sprintf("%d items", &[Value::Int(3)]), "3 items");
        assert_eq!(
            sprintf(
                "%5d|%-5s|%05.1f",
                &[Value::Int(42), Value::from("ab"), Value::Float(3.04159)]
            ),
            "   42|ab   |003.0"
        );
        assert_eq!(
            sprintf(
                "%q %x %X",
                &[Value::from("a\"b"), Value::Int(255), Value::from("hi")]
            ),
            r#""a\"b" ff 6869"#
        );
        assert_eq!(sprintf("%e", &[Value::Float(1234.5678)]), "1.234568e+03");
        assert_eq!(
            sprintf("%g %v", &[Value::Float(1e21), Value::Float(0.1)]),
            "1e+21 0.1"
        );
        assert_eq!(sprintf("%d", &[Value::Float(1.5)]), "%!d(float64=1.5)");
        assert_eq!(sprintf("%s", &[Value::Int(1)]), "%!s(int=1)");
        assert_eq!(sprintf("%s %s", &[Value::from("a")]), "a %!s(MISSING)");
        assert_eq!(
            sprintf("%s", &[Value::from("a"), Value::Int(2)]),
            "a%!(EXTRA int=2)"
        );
        assert_eq!(
            sprintf("%t %v %c", &[Value::Bool(true), Value::Nil, Value::Int(65)]),
            "true <nil> A"
        );
        assert_eq!(
            sprintf("%+d %+.1f", &[Value::Int(5), Value::Float(2.0)]),
            "+5 +2.0"
        );
    }

    #[test]
    fn sprintf_type_verb() {
        assert_eq!(
            sprintf("%T %T %T", &[Value::Float(1.0), Value::from("a")]),
            "float64 string %!T(MISSING)"
        );
    }

    #[test]
    fn sprint_spacing() {
        assert_eq!(
            sprint(&[
                Value::Int(1),
                Value::Int(2),
                Value::from("a"),
                Value::Int(3)
            ]),
            "1 2a3"
        );
        assert_eq!(sprintln(&[Value::from("a"), Value::Int(1)]), "a 1\n");
    }

    #[test]
    fn times_and_durations_like_go() {
        let t = chrono::Utc
            .timestamp_opt(1435065584, 128_000_000)
            .unwrap()
            .fixed_offset();
        assert_eq!(time_string(&t), "2015-06-23 13:19:44.128 +0000 UTC");
        assert_eq!(format_time(&t, "2006"), "2015");
        assert_eq!(
            format_time(&t, "Mon Jan _2 03:04:05.000 PM Z07:00"),
            "Tue Jun 23 01:19:44.128 PM Z"
        );
        let east = FixedOffset::east_opt(5 * 3600 + 1800).unwrap();
        assert_eq!(
            format_time(&t.with_timezone(&east), "2006-01-02T15:04:05-07:00 MST"),
            "2015-06-23T18:49:44+05:30 +0530"
        );
        assert_eq!(duration_string(3_720_010_000_000), "1h2m0.01s");
        assert_eq!(duration_string(1_500_000), "1.5ms");
        assert_eq!(duration_string(-90_000_000_000), "-1m30s");
        assert_eq!(duration_string(999), "999ns");
    }
}
