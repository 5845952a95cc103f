package io.tuneline.registry.models;

import com.google.protobuf.util.Timestamps;
import io.tuneline.common.messaging.EventPublisher;
import io.tuneline.proto.v1.ModelChanged;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import org.eclipse.microprofile.reactive.messaging.Channel;
import org.eclipse.microprofile.reactive.messaging.Emitter;
import org.jboss.logging.Logger;

/**
 * Announces committed stage and alias changes as {@code ModelChanged} on {@code
 * finetune.models.changed}, so that what serves a name or an alias (the serving service) resolves
 * it again at once instead of at its next poll.
 *
 * <p>The event is sent after the change's transaction has committed (a consumer that asks the
 * registry on receipt must see the change) and the request does not wait for the broker: the change
 * is already made and is the registry's answer; a lost event delays a consumer until its next poll
 * ({@code tuneline.serving.aliases.refresh-interval}) and is logged here.
 */
@ApplicationScoped
public class ModelChangeEvents {
    private static final Logger LOG = Logger.getLogger(ModelChangeEvents.class);

    private final EventPublisher publisher;
    private final Emitter<byte[]> changed;

    @Inject
    public ModelChangeEvents(
            EventPublisher publisher, @Channel("models-changed") Emitter<byte[]> changed) {
        this.publisher = publisher;
        this.changed = changed;
    }

    /** Sends what {@code made} changed; nothing when the request changed nothing. */
    public void announce(StageTransitions.Changed made, String actor, String reason) {
        if (made.changes().isEmpty()) {
            return;
        }
        ModelChanged event =
                ModelChanged.newBuilder()
                        .setJobId(made.jobId())
                        .setModelName(made.model())
                        .addAllChanges(made.changes())
                        .setActor(actor)
                        .setReason(reason == null ? "" : reason)
                        .setChangedAt(Timestamps.now())
                        .build();
        try {
            publisher
                    .send(changed, event)
                    .whenComplete(
                            (ok, failure) -> {
                                if (failure != null) {
                                    notSent(made, failure);
                                }
                            });
        } catch (RuntimeException e) {
            // The emitter refuses at once when its buffer is full or the channel is down.
            notSent(made, e);
        }
    }

    private static void notSent(StageTransitions.Changed made, Throwable why) {
        LOG.warnf(
                "the change of model %s was made but its ModelChanged event was not sent"
                        + " (consumers see it at their next poll): %s",
                made.model(), why.getMessage());
    }
}
