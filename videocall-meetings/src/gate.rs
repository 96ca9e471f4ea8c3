//! The relays' question for a token-less `/lobby/{user}/{meeting}` join, answered from the store.

use videocall_auth::{GateError, GateFuture, MeetingGate, OpenJoin};
use videocall_types::{MeetingId, UserId};

use crate::{Access, Meeting, MeetingError, MeetingState, ParticipantStatus, Role, Store};

impl MeetingGate for Store {
    /// Open meeting → allowed as an attendee (under the name they joined with through the API,
    /// else their user id); protected, or with a waiting room, or the user was turned away →
    /// a token is required; ended → not found. An unknown meeting is created open when this
    /// store allows open meetings, else it is not found.
    fn open_join<'a>(&'a self, meeting: &'a MeetingId, user: &'a UserId) -> GateFuture<'a> {
        Box::pin(async move {
            self.answer_open_join(meeting, user)
                .await
                .map_err(|e| GateError(e.to_string()))
        })
    }
}

impl Store {
    async fn answer_open_join(
        &self,
        id: &MeetingId,
        user: &UserId,
    ) -> Result<OpenJoin, MeetingError> {
        let meeting = match self.meeting(id.as_str()).await? {
            Some(meeting) => meeting,
            None if self.config.allow_open => self.create_open(id).await?,
            None => return Ok(OpenJoin::NotFound),
        };
        if meeting.state == MeetingState::Ended {
            return Ok(OpenJoin::NotFound);
        }
        // A waiting room is only kept by the API's join, which a plain join would skip.
        if meeting.access == Access::Protected || meeting.waiting_room {
            return Ok(OpenJoin::TokenRequired);
        }
        let known = self.participant(id, user.as_str()).await?;
        if known
            .as_ref()
            .is_some_and(|p| p.status == ParticipantStatus::Rejected)
        {
            return Ok(OpenJoin::TokenRequired);
        }
        Ok(OpenJoin::Allowed {
            // Only a meeting an owner created (the API's record) is enforced as encrypted; one
            // made by a plain join follows the node's policy, which the clients ask for.
            e2ee: meeting.owner_id.is_some() && meeting.e2ee_required,
            grants: Role::Attendee.grants(),
            display_name: known.map_or_else(|| user.as_str().to_owned(), |p| p.display_name),
        })
    }

    /// Meeting `id` as an open meeting without an owner (first plain join to an unknown id).
    /// Two nodes racing to create it both get the one row.
    async fn create_open(&self, id: &MeetingId) -> Result<Meeting, MeetingError> {
        let now = crate::now_ms();
        sqlx::query(
            "INSERT INTO meetings (id, owner_id, state, access, waiting_room, e2ee_required, \
             max_participants, created_at, started_at, ended_at, updated_at) \
             VALUES ($1, NULL, 'idle', 'open', 0, 1, $2, $3, NULL, NULL, $3) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id.as_str())
        .bind(crate::DEFAULT_MAX_PARTICIPANTS)
        .bind(now)
        .execute(&self.pool)
        .await?;
        tracing::info!(meeting = %id, "open meeting created by a plain join");
        self.meeting(id.as_str())
            .await?
            .ok_or(MeetingError::NotFound("meeting"))
    }
}
