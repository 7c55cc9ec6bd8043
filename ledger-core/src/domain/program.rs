//! A program's own stream: its rules, defined once and then replaced whole.
//! A rules change applies to commands decided after it; it never rewrites
//! history, because events carry the numbers that were decided.

use serde::{Deserialize, Serialize};

use super::command::ProgramCommand;
use super::error::DomainError;
use super::event::{Event, EventKind, ProgramDefined, ProgramRulesChanged};
use super::rules::Rules;
use crate::error::FieldReason;

/// The state of a program stream: its current rules, if defined.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Program {
    rules: Option<Rules>,
}

impl Program {
    /// The rules in force, if the program is defined.
    pub fn rules(&self) -> Option<&Rules> {
        self.rules.as_ref()
    }
}

/// Decides a program command. The currency may not change once defined:
/// remembered purchases, refunds and liability values are in it.
pub fn decide_program(
    state: &Program,
    command: &ProgramCommand,
    now_us: i64,
) -> Result<Vec<Event>, DomainError> {
    let kind = match (command, state.rules()) {
        (ProgramCommand::DefineProgram { .. }, Some(_)) => {
            return Err(DomainError::ProgramAlreadyDefined);
        }
        (ProgramCommand::ChangeRules { .. }, None) => return Err(DomainError::ProgramNotDefined),
        (ProgramCommand::DefineProgram { rules }, None) => {
            Rules::from_raw(rules)?;
            EventKind::ProgramDefined(ProgramDefined {
                rules: rules.clone(),
            })
        }
        (ProgramCommand::ChangeRules { rules }, Some(current)) => {
            let next = Rules::from_raw(rules)?;
            if next.currency() != current.currency() {
                return Err(DomainError::invalid("currency", FieldReason::Immutable));
            }
            EventKind::ProgramRulesChanged(ProgramRulesChanged {
                rules: rules.clone(),
            })
        }
    };
    Ok(vec![Event {
        occurred_at_us: now_us,
        kind,
    }])
}

/// Folds a program event into a program's state. Rules in the log were
/// validated when decided; rules that no longer validate (a corrupt or
/// hand-edited log) leave the state unchanged and are caught by the
/// decode-time check.
pub fn apply_program(state: &mut Program, event: &Event) {
    match &event.kind {
        EventKind::ProgramDefined(ProgramDefined { rules })
        | EventKind::ProgramRulesChanged(ProgramRulesChanged { rules }) => {
            let validated = Rules::from_raw(rules);
            debug_assert!(
                validated.is_ok(),
                "program events: rules were validated when decided"
            );
            if let Ok(rules) = validated {
                state.rules = Some(rules);
            }
        }
        _ => {}
    }
}
