package io.tuneline.registry.models;

import jakarta.persistence.Column;
import jakarta.persistence.Entity;
import jakarta.persistence.GeneratedValue;
import jakarta.persistence.GenerationType;
import jakarta.persistence.Id;
import jakarta.persistence.Table;
import java.time.Instant;

/**
 * A recorded change: a version's stage ({@code kind=STAGE}, from/to are stages) or an alias ({@code
 * kind=ALIAS}, from/to are version numbers, either empty when the alias was created or removed).
 */
@Entity
@Table(name = "version_transitions")
public class VersionTransition {
    @Id
    @GeneratedValue(strategy = GenerationType.IDENTITY)
    public Long id;

    @Column(name = "model_id")
    public Long modelId;

    @Column(name = "version_id")
    public Long versionId;

    public String kind;

    public String alias;

    @Column(name = "from_value")
    public String fromValue;

    @Column(name = "to_value")
    public String toValue;

    public String actor;

    public String reason;

    public Instant at;
}
