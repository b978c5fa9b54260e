//! The commands a message suggests, `cowtree ...` between backquotes, so that a test runs each
//! exactly as printed.

/// Every `cowtree ...` command quoted in `message`, in order, split into words as a POSIX shell
/// splits them (messages quote with single quotes only; see `cowtree_store::error::shell_word`).
pub fn commands(message: &str) -> Vec<Vec<String>> {
    message
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|c| c.starts_with("cowtree ") || *c == "cowtree")
        .map(split)
        .collect()
}

/// `line` split into words: whitespace separates them outside single quotes; a quote pair
/// keeps what is inside as it is; outside quotes a backslash takes the next character as it is.
/// A character a shell would act on, outside quotes, fails the test.
pub fn split(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if !quoted => {
                word.extend(chars.next());
                in_word = true;
            }
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                // A message's command is copied into a shell: there, unquoted, these expand
                // or end the command (a name or path holding one must be quoted).
                assert!(
                    quoted || !"$;&|<>()*?[]\"{}!".contains(c),
                    "{c:?} unquoted in {line:?}: a shell would not run this as printed"
                );
                word.push(c);
                in_word = true;
            }
        }
    }
    assert!(!quoted, "unbalanced quote in {line:?}");
    if in_word {
        words.push(word);
    }
    words
}

/// The test's binary with the arguments of suggested command `words` (whose first is `cowtree`).
pub fn command(words: &[String]) -> std::process::Command {
    assert_eq!(
        words.first().map(String::as_str),
        Some("cowtree"),
        "{words:?}"
    );
    let mut c = super::bin();
    c.args(&words[1..]);
    c
}
