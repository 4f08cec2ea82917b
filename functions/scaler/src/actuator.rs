//! Acting on a decision: an ECS service's desired count (`UpdateService`) or an EC2 Auto
//! Scaling group's desired capacity (`SetDesiredCapacity`). Called only after the
//! decision is recorded; a failure is recorded too and retried on the next tick.

use crate::domain::policy::Actuator;

#[derive(Debug, Clone)]
pub struct Actuators {
    ecs: aws_sdk_ecs::Client,
    autoscaling: aws_sdk_autoscaling::Client,
}

impl Actuators {
    pub fn from_env(sdk: &aloft_shared::aws::SdkConfig) -> Self {
        Self::new(
            aws_sdk_ecs::Client::new(sdk),
            aws_sdk_autoscaling::Client::new(sdk),
        )
    }

    pub fn new(ecs: aws_sdk_ecs::Client, autoscaling: aws_sdk_autoscaling::Client) -> Self {
        Self { ecs, autoscaling }
    }

    /// Tells `actuator` to run `desired` instances; the error says why it did not.
    #[tracing::instrument(skip_all, fields(?actuator, desired))]
    pub async fn apply(&self, actuator: &Actuator, desired: u32) -> Result<(), String> {
        let count = i32::try_from(desired).map_err(|e| e.to_string())?;
        match actuator {
            Actuator::Ecs { cluster, service } => self
                .ecs
                .update_service()
                .cluster(cluster)
                .service(service)
                .desired_count(count)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws_sdk_ecs::error::DisplayErrorContext(e).to_string()),
            Actuator::AutoscalingGroup { name } => self
                .autoscaling
                .set_desired_capacity()
                .auto_scaling_group_name(name)
                .desired_capacity(count)
                // aloft's own cooldowns already decided; the group's would only delay it.
                .honor_cooldown(false)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws_sdk_autoscaling::error::DisplayErrorContext(e).to_string()),
        }
    }
}
