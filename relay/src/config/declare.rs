//! The machinery behind the settings table in [`super`]: one declaration per setting
//! generates everything that used to be written out by hand for each of them.
//!
//! From one `settings!` entry come
//! - the clap argument of [`super::Cli`] (flag, env var, default, value name, help text
//!   from the doc comment), so `--help` documents it;
//! - the typed field of [`super::Config`], with the same doc comment;
//! - the parse step of [`super::Cli::into_config`], which collects every failure instead
//!   of stopping at the first (clap's own value parsers stop at the first);
//! - its row in [`super::SETTINGS`], from which [`markdown_table`] renders README's table
//!   (a test checks that README holds exactly that table).
//!
//! [`super::Config::default`] runs the same parse step on no input, so a default is
//! written once, as the text a user would type, and checked like any value.

use super::ConfigError;

/// What one setting looks like from the outside: the row of README's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The [`super::Config`] field it fills.
    pub field: &'static str,
    /// The command-line flag, e.g. `--listen`.
    pub flag: &'static str,
    /// The environment variable, e.g. `MESHRAY_LISTEN`.
    pub env: &'static str,
    /// The placeholder shown after the flag, e.g. `ADDR`.
    pub value_name: &'static str,
    /// The value used when neither flag nor variable is given; `None`: unset.
    pub default: Option<&'static str>,
    /// The doc comment, one entry per line (the `--help` text).
    pub doc: &'static [&'static str],
}

impl Setting {
    /// The doc comment as one line of prose.
    pub fn description(&self) -> String {
        self.doc
            .iter()
            .map(|line| line.trim())
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// README's relay configuration table, rendered from `settings`.
pub fn markdown_table(settings: &[Setting]) -> String {
    let mut table = String::from("| flag | env | default | what it sets |\n|---|---|---|---|\n");
    for setting in settings {
        let default = setting
            .default
            .map_or_else(|| "—".to_owned(), |d| format!("`{}`", cell(d)));
        table.push_str(&format!(
            "| `{} {}` | `{}` | {} | {} |\n",
            setting.flag,
            cell(setting.value_name),
            setting.env,
            default,
            cell(&setting.description())
        ));
    }
    table
}

/// Text made safe for a Markdown table cell: a bare `|` would end the cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// Collects parse results, remembering every failure.
#[derive(Debug, Default)]
pub struct Collector {
    /// Failures so far, in declaration order.
    pub errors: Vec<ConfigError>,
}

impl Collector {
    /// Parses `value` with `parse`; on failure records it and returns `None`.
    pub fn parse<T>(
        &mut self,
        flag: &'static str,
        env: &'static str,
        value: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match parse(value) {
            Ok(parsed) => Some(parsed),
            Err(reason) => {
                self.errors.push(ConfigError {
                    flag,
                    env,
                    value: value.to_owned(),
                    reason,
                });
                None
            }
        }
    }
}

/// Declares the relay's settings; see the module documentation for what it generates.
///
/// Each entry:
/// ```text
/// /// Help text (first line: short help; all lines: README and long help).
/// field_name: Type {
///     flag: "flag-name", env: "MESHRAY_…", value_name: "PLACEHOLDER",
///     default: "text as typed",        // leave out for an optional setting:
///                                      //   Type is then Option<T> and parse gives T
///     arg: [hide_env_values = true],   // optional: more clap `#[arg(..)]` items
///     parse: fn(&str) -> Result<T, String>,
/// }
/// ```
macro_rules! settings {
    // A setting with a default: the text is parsed like any value.
    (@value $collector:ident, $raw:expr, $flag:tt, $env:tt, $parse:expr, [$default:tt]) => {
        $collector.parse(concat!("--", $flag), $env, $raw.as_deref().unwrap_or($default), $parse)
    };
    // An optional setting: absent is `None`, present is parsed into `Some`.
    (@value $collector:ident, $raw:expr, $flag:tt, $env:tt, $parse:expr, []) => {
        match $raw.as_deref() {
            None => Some(None),
            Some(text) => $collector
                .parse(concat!("--", $flag), $env, text, $parse)
                .map(Some),
        }
    };
    (@default) => { None };
    (@default $default:tt) => { Some($default) };

    (
        $(
            $(#[doc = $doc:tt])*
            $field:ident: $ty:ty {
                flag: $flag:tt,
                env: $env:tt,
                value_name: $value_name:tt,
                $(default: $default:tt,)?
                $(arg: [$($arg:tt)*],)?
                parse: $parse:expr $(,)?
            }
        )*
    ) => {
        /// The command line as typed: every value a raw string, parsed by
        /// [`Cli::into_config`] so that all problems are reported together.
        #[derive(Debug, Clone, Default, clap::Parser)]
        #[command(
            name = "meshray-relay",
            version,
            about = ABOUT,
            after_help = AFTER_HELP
        )]
        pub struct Cli {
            $(
                $(#[doc = $doc])*
                #[arg(
                    long = $flag,
                    value_name = $value_name,
                    env = $env,
                    default_value = settings!(@default $($default)?)
                    $(, $($arg)*)?
                )]
                pub $field: Option<String>,
            )*
        }

        /// The validated configuration [`crate::run`] needs.
        ///
        /// Tests build it as `Config { aws: Some(..), ..Config::default() }`; the binary
        /// gets it from [`Cli::into_config`].
        #[derive(Debug, Clone)]
        pub struct Config {
            $(
                $(#[doc = $doc])*
                pub $field: $ty,
            )*
            /// AWS settings for the `xray` sink. `None`: load the default chain
            /// (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL_XRAY`, …) at start. Tests put
            /// a fixed region, static credentials and a local endpoint here instead of
            /// touching process env.
            pub aws: Option<aws_config::SdkConfig>,
        }

        /// Every setting, in declaration order: README's table and the config tests
        /// read this.
        pub const SETTINGS: &[Setting] = &[
            $(
                Setting {
                    field: stringify!($field),
                    flag: concat!("--", $flag),
                    env: $env,
                    value_name: $value_name,
                    default: settings!(@default $($default)?),
                    doc: &[$($doc),*],
                },
            )*
        ];

        impl Cli {
            /// Parses and validates every setting.
            ///
            /// # Errors
            /// [`ConfigErrors`] listing every setting that is not valid, each with the
            /// reason.
            pub fn into_config(self) -> Result<Config, ConfigErrors> {
                let mut collector = Collector::default();
                // Parse everything first, without `?`, so all failures are collected.
                $(
                    let $field = settings!(
                        @value collector, self.$field, $flag, $env, $parse, [$($default)?]
                    );
                )*
                // Only now give up, with the whole list; then the rules that span
                // several settings.
                match ($($field,)*) {
                    ($(Some($field),)*) if collector.errors.is_empty() => {
                        let config = Config {
                            $($field,)*
                            aws: None,
                        };
                        let errors = check_combinations(&config);
                        if errors.is_empty() {
                            Ok(config)
                        } else {
                            Err(ConfigErrors(errors))
                        }
                    }
                    _ => Err(ConfigErrors(collector.errors)),
                }
            }
        }
    };
}

pub(crate) use settings;
