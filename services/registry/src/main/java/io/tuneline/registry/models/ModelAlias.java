package io.tuneline.registry.models;

import jakarta.persistence.Column;
import jakarta.persistence.Embeddable;
import jakarta.persistence.EmbeddedId;
import jakarta.persistence.Entity;
import jakarta.persistence.Table;
import java.io.Serializable;
import java.time.Instant;
import java.util.Objects;

/** A named pointer ({@code champion}) from a model to one of its versions. */
@Entity
@Table(name = "model_aliases")
public class ModelAlias {
    @EmbeddedId public Key key;

    @Column(name = "version_id")
    public Long versionId;

    @Column(name = "updated_at")
    public Instant updatedAt;

    @Embeddable
    public static class Key implements Serializable {
        @Column(name = "model_id")
        public Long modelId;

        public String alias;

        public Key() {}

        public Key(Long modelId, String alias) {
            this.modelId = modelId;
            this.alias = alias;
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Key k
                    && Objects.equals(modelId, k.modelId)
                    && Objects.equals(alias, k.alias);
        }

        @Override
        public int hashCode() {
            return Objects.hash(modelId, alias);
        }
    }
}
