//! Fine-tuning: the loop ([`trainer`]), its optimiser ([`optim`]), learning
//! rate schedule ([`schedule`]) and loss ([`loss`]).

mod job;
pub mod loss;
pub mod native;
pub(crate) mod optim;
pub(crate) mod schedule;
mod trainer;

pub use job::{run, DeltaOf, LabelSource, Method, TrainJob, TrainSummary, TrainTask};
pub use trainer::{
    train, train_step, ClassWeights, EpochReport, Example, Target, TrainConfig, TrainEvent,
    TrainOutcome, DEFAULT_FROZEN_CACHE_MB,
};
