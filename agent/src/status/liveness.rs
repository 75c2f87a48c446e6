//! Is a process id still this program? Read from `/proc/<pid>/stat`, so a pid reused by
//! another program, or a zombie, does not pass for a running agent.

/// The command name and state letter of a `/proc/<pid>/stat` line (`4242 (beffroi-agent) S
/// …`). The name may hold spaces and parentheses: it ends at the last `)`.
pub fn parse_stat(stat: &str) -> Option<(&str, char)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?;
    let state = stat.get(close + 1..)?.trim_start().chars().next()?;
    Some((name, state))
}

fn command_and_state(pid: &str) -> Option<(String, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat).map(|(name, state)| (name.to_owned(), state))
}

/// Whether `pid` is a live (not zombie, not dead) process running the same program as this
/// one (same command name).
pub fn is_this_program(pid: u32) -> bool {
    let Some((own, _)) = command_and_state("self") else {
        return false;
    };
    match command_and_state(&pid.to_string()) {
        Some((name, state)) => name == own && !matches!(state, 'Z' | 'X' | 'x'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_lines() {
        assert_eq!(
            parse_stat("4242 (beffroi-agent) S 1 4242 4242 0 -1"),
            Some(("beffroi-agent", 'S'))
        );
        assert_eq!(parse_stat("7 (a) b) (c) Z 1 7"), Some(("a) b) (c", 'Z')));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x)"), None);
    }

    #[test]
    fn this_process_is_itself_and_a_free_pid_is_not() {
        assert!(is_this_program(std::process::id()));
        // pid_max is at most 2^22 on Linux.
        assert!(!is_this_program(u32::MAX - 1));
        // pid 1 runs another program.
        assert!(!is_this_program(1));
    }
}
