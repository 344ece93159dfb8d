//! Fine-tuning: the loop ([`trainer`]), its optimiser ([`optim`]), learning
//! rate schedule ([`schedule`]) and loss ([`loss`]).

pub mod job;
pub mod loss;
pub mod native;
pub mod optim;
pub mod schedule;
pub mod trainer;

pub use job::{run, DeltaOf, LabelSource, Method, TrainJob, TrainSummary};
pub use trainer::{
    train, train_step, ClassWeights, EpochReport, Example, TrainConfig, TrainEvent, TrainOutcome,
};
