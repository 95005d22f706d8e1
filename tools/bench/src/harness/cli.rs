//! The command line of the benches that take `--flag N` pairs (`bench projector`,
//! `bench receipts`, `bench push`).

/// Parses `args` with `parse`; `None` after answering `-h` or `--help` with `usage`. After a bad
/// argument it prints the reason and `usage` and ends the process with status 2.
pub fn options<T>(
    args: &[String],
    usage: &str,
    parse: impl FnOnce(&[String]) -> Result<T, String>,
) -> Option<T> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{usage}");
        return None;
    }
    match parse(args) {
        Ok(options) => Some(options),
        Err(message) => {
            eprintln!("{message}\n{usage}");
            std::process::exit(2);
        }
    }
}

/// The `--flag N` pairs of `args` in order, each value a number; an error for a flag without a
/// value or with one that is not a number. The caller stops at the first error.
pub fn numeric_flags(args: &[String]) -> impl Iterator<Item = Result<(&str, usize), String>> {
    let mut args = args.iter();
    std::iter::from_fn(move || {
        let flag = args.next()?;
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))
            .and_then(|value| {
                value
                    .parse::<usize>()
                    .map_err(|_| format!("{flag}: not a positive number"))
            });
        Some(value.map(|value| (flag.as_str(), value)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_come_in_numeric_pairs() {
        let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let pairs = args("--a 1 --b 20");
        let pairs: Result<Vec<_>, _> = numeric_flags(&pairs).collect();
        assert_eq!(pairs, Ok(vec![("--a", 1), ("--b", 20)]));
        let no_value = args("--a");
        let no_value: Vec<_> = numeric_flags(&no_value).collect();
        assert_eq!(no_value, vec![Err("--a needs a value".to_owned())]);
        let not_a_number = args("--a x");
        let not_a_number: Vec<_> = numeric_flags(&not_a_number).collect();
        assert_eq!(
            not_a_number,
            vec![Err("--a: not a positive number".to_owned())]
        );
    }
}
