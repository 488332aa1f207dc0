//! Finding a hook's program, as `servo check` and every run find it.

use crate::util::child;

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a hook's program cannot be run.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Unresolved {
    Empty,
    Missing(PathBuf),
    NotOnPath { program: String, path: String },
    NotAFile(PathBuf),
    NotExecutable(PathBuf),
}

impl fmt::Display for Unresolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unresolved::Empty => f.write_str("the command names no program"),
            Unresolved::Missing(path) => write!(f, "{} does not exist", path.display()),
            Unresolved::NotOnPath { program, path } => {
                write!(f, "`{program}` is not on PATH ({path})")
            }
            Unresolved::NotAFile(path) => write!(f, "{} is not a file", path.display()),
            Unresolved::NotExecutable(path) => write!(f, "{} is not executable", path.display()),
        }
    }
}

impl Unresolved {
    pub(super) fn hint(&self, working_dir: &Path) -> String {
        match self {
            Unresolved::Empty | Unresolved::NotAFile(_) => {
                "name the program first: `[./script.sh, ARG...]`".into()
            }
            Unresolved::Missing(_) => format!(
                "a program path with a `/` is relative to the working directory, {}",
                working_dir.display()
            ),
            Unresolved::NotOnPath { .. } => {
                "install it, give its path, or set `env.PATH` for the hooks".into()
            }
            Unresolved::NotExecutable(path) => {
                format!("make it executable: chmod +x {}", path.display())
            }
        }
    }
}

/// Finds `program` like `execvp` would, but relative to `working_dir` and before spawning, so the
/// check and the run agree and the error can say what is wrong.
pub(super) fn resolve_program(
    program: &str,
    working_dir: &Path,
    path: Option<&std::ffi::OsStr>,
) -> Result<PathBuf, Unresolved> {
    if program.trim().is_empty() {
        return Err(Unresolved::Empty);
    }
    if program.contains('/') || program.contains(std::path::MAIN_SEPARATOR) {
        // Without its `.` components, the path reads well in messages.
        let relative: PathBuf = Path::new(program)
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        let candidate = working_dir.join(relative);
        return match candidate.metadata() {
            Err(_) => Err(Unresolved::Missing(candidate)),
            Ok(m) if !m.is_file() => Err(Unresolved::NotAFile(candidate)),
            Ok(m) if !child::is_executable(&m) => Err(Unresolved::NotExecutable(candidate)),
            Ok(_) => Ok(candidate),
        };
    }
    if let Some(found) = child::on_path(program.as_ref(), path, Some(working_dir)) {
        return Ok(found);
    }
    // Only to say why: a file of that name that is there but not executable.
    let not_executable = path
        .map(std::env::split_paths)
        .into_iter()
        .flatten()
        .map(|dir| working_dir.join(dir).join(program))
        .find(|candidate| candidate.is_file());
    Err(match not_executable {
        Some(candidate) => Unresolved::NotExecutable(candidate),
        None => Unresolved::NotOnPath {
            program: program.to_string(),
            path: path
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
        },
    })
}
