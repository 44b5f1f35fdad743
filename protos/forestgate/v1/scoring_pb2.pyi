import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Brand(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BRAND_UNSPECIFIED: _ClassVar[Brand]
    BRAND_VISA: _ClassVar[Brand]
    BRAND_MASTERCARD: _ClassVar[Brand]

class Funding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FUNDING_UNSPECIFIED: _ClassVar[Funding]
    FUNDING_CREDIT: _ClassVar[Funding]
    FUNDING_DEBIT: _ClassVar[Funding]
    FUNDING_PREPAID: _ClassVar[Funding]

class ProductTier(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRODUCT_TIER_UNSPECIFIED: _ClassVar[ProductTier]
    PRODUCT_TIER_STANDARD: _ClassVar[ProductTier]
    PRODUCT_TIER_GOLD: _ClassVar[ProductTier]
    PRODUCT_TIER_PLATINUM: _ClassVar[ProductTier]
    PRODUCT_TIER_BUSINESS: _ClassVar[ProductTier]

class Channel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_UNSPECIFIED: _ClassVar[Channel]
    CHANNEL_ECOMMERCE: _ClassVar[Channel]
    CHANNEL_IN_APP: _ClassVar[Channel]
    CHANNEL_RECURRING: _ClassVar[Channel]
    CHANNEL_UNSCHEDULED_COF: _ClassVar[Channel]
    CHANNEL_MOTO: _ClassVar[Channel]

class Initiator(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INITIATOR_UNSPECIFIED: _ClassVar[Initiator]
    INITIATOR_CIT: _ClassVar[Initiator]
    INITIATOR_MIT: _ClassVar[Initiator]

class PosEntryMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POS_ENTRY_MODE_UNSPECIFIED: _ClassVar[PosEntryMode]
    POS_ENTRY_MODE_ECOMMERCE: _ClassVar[PosEntryMode]
    POS_ENTRY_MODE_CREDENTIAL_ON_FILE: _ClassVar[PosEntryMode]
    POS_ENTRY_MODE_MANUAL: _ClassVar[PosEntryMode]
    POS_ENTRY_MODE_CHIP: _ClassVar[PosEntryMode]
    POS_ENTRY_MODE_CONTACTLESS: _ClassVar[PosEntryMode]
    POS_ENTRY_MODE_MAGSTRIPE: _ClassVar[PosEntryMode]

class StoredCredential(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STORED_CREDENTIAL_NONE: _ClassVar[StoredCredential]
    STORED_CREDENTIAL_RECURRING: _ClassVar[StoredCredential]
    STORED_CREDENTIAL_UNSCHEDULED: _ClassVar[StoredCredential]
    STORED_CREDENTIAL_CIT_STORED: _ClassVar[StoredCredential]

class Exemption(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXEMPTION_NONE: _ClassVar[Exemption]
    EXEMPTION_LOW_VALUE: _ClassVar[Exemption]
    EXEMPTION_TRA: _ClassVar[Exemption]

class RetryAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RETRY_ACTION_UNSPECIFIED: _ClassVar[RetryAction]
    RETRY_ACTION_NO_RETRY: _ClassVar[RetryAction]
    RETRY_ACTION_RETRY: _ClassVar[RetryAction]
    RETRY_ACTION_CASCADE: _ClassVar[RetryAction]
    RETRY_ACTION_CIT_3DS: _ClassVar[RetryAction]
    RETRY_ACTION_UPDATE_CREDENTIALS: _ClassVar[RetryAction]
BRAND_UNSPECIFIED: Brand
BRAND_VISA: Brand
BRAND_MASTERCARD: Brand
FUNDING_UNSPECIFIED: Funding
FUNDING_CREDIT: Funding
FUNDING_DEBIT: Funding
FUNDING_PREPAID: Funding
PRODUCT_TIER_UNSPECIFIED: ProductTier
PRODUCT_TIER_STANDARD: ProductTier
PRODUCT_TIER_GOLD: ProductTier
PRODUCT_TIER_PLATINUM: ProductTier
PRODUCT_TIER_BUSINESS: ProductTier
CHANNEL_UNSPECIFIED: Channel
CHANNEL_ECOMMERCE: Channel
CHANNEL_IN_APP: Channel
CHANNEL_RECURRING: Channel
CHANNEL_UNSCHEDULED_COF: Channel
CHANNEL_MOTO: Channel
INITIATOR_UNSPECIFIED: Initiator
INITIATOR_CIT: Initiator
INITIATOR_MIT: Initiator
POS_ENTRY_MODE_UNSPECIFIED: PosEntryMode
POS_ENTRY_MODE_ECOMMERCE: PosEntryMode
POS_ENTRY_MODE_CREDENTIAL_ON_FILE: PosEntryMode
POS_ENTRY_MODE_MANUAL: PosEntryMode
POS_ENTRY_MODE_CHIP: PosEntryMode
POS_ENTRY_MODE_CONTACTLESS: PosEntryMode
POS_ENTRY_MODE_MAGSTRIPE: PosEntryMode
STORED_CREDENTIAL_NONE: StoredCredential
STORED_CREDENTIAL_RECURRING: StoredCredential
STORED_CREDENTIAL_UNSCHEDULED: StoredCredential
STORED_CREDENTIAL_CIT_STORED: StoredCredential
EXEMPTION_NONE: Exemption
EXEMPTION_LOW_VALUE: Exemption
EXEMPTION_TRA: Exemption
RETRY_ACTION_UNSPECIFIED: RetryAction
RETRY_ACTION_NO_RETRY: RetryAction
RETRY_ACTION_RETRY: RetryAction
RETRY_ACTION_CASCADE: RetryAction
RETRY_ACTION_CIT_3DS: RetryAction
RETRY_ACTION_UPDATE_CREDENTIALS: RetryAction

class Money(_message.Message):
    __slots__ = ("amount_minor", "currency")
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    amount_minor: int
    currency: str
    def __init__(self, amount_minor: _Optional[int] = ..., currency: _Optional[str] = ...) -> None: ...

class Card(_message.Message):
    __slots__ = ("bin", "pan_hash", "par", "expiry_year", "expiry_month", "brand", "funding", "product_tier", "commercial", "issuer_country", "billing_currency", "network_token")
    BIN_FIELD_NUMBER: _ClassVar[int]
    PAN_HASH_FIELD_NUMBER: _ClassVar[int]
    PAR_FIELD_NUMBER: _ClassVar[int]
    EXPIRY_YEAR_FIELD_NUMBER: _ClassVar[int]
    EXPIRY_MONTH_FIELD_NUMBER: _ClassVar[int]
    BRAND_FIELD_NUMBER: _ClassVar[int]
    FUNDING_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_TIER_FIELD_NUMBER: _ClassVar[int]
    COMMERCIAL_FIELD_NUMBER: _ClassVar[int]
    ISSUER_COUNTRY_FIELD_NUMBER: _ClassVar[int]
    BILLING_CURRENCY_FIELD_NUMBER: _ClassVar[int]
    NETWORK_TOKEN_FIELD_NUMBER: _ClassVar[int]
    bin: str
    pan_hash: str
    par: str
    expiry_year: int
    expiry_month: int
    brand: Brand
    funding: Funding
    product_tier: ProductTier
    commercial: bool
    issuer_country: str
    billing_currency: str
    network_token: bool
    def __init__(self, bin: _Optional[str] = ..., pan_hash: _Optional[str] = ..., par: _Optional[str] = ..., expiry_year: _Optional[int] = ..., expiry_month: _Optional[int] = ..., brand: _Optional[_Union[Brand, str]] = ..., funding: _Optional[_Union[Funding, str]] = ..., product_tier: _Optional[_Union[ProductTier, str]] = ..., commercial: _Optional[bool] = ..., issuer_country: _Optional[str] = ..., billing_currency: _Optional[str] = ..., network_token: _Optional[bool] = ...) -> None: ...

class Merchant(_message.Message):
    __slots__ = ("id", "country", "mcc", "local_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    MCC_FIELD_NUMBER: _ClassVar[int]
    LOCAL_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    country: str
    mcc: int
    local_time: str
    def __init__(self, id: _Optional[str] = ..., country: _Optional[str] = ..., mcc: _Optional[int] = ..., local_time: _Optional[str] = ...) -> None: ...

class Authentication(_message.Message):
    __slots__ = ("three_ds", "eci", "challenge", "exemption")
    THREE_DS_FIELD_NUMBER: _ClassVar[int]
    ECI_FIELD_NUMBER: _ClassVar[int]
    CHALLENGE_FIELD_NUMBER: _ClassVar[int]
    EXEMPTION_FIELD_NUMBER: _ClassVar[int]
    three_ds: bool
    eci: str
    challenge: bool
    exemption: Exemption
    def __init__(self, three_ds: _Optional[bool] = ..., eci: _Optional[str] = ..., challenge: _Optional[bool] = ..., exemption: _Optional[_Union[Exemption, str]] = ...) -> None: ...

class Decline(_message.Message):
    __slots__ = ("authorization_id", "time", "route_id", "response_code", "merchant_advice_code", "credential_changed")
    AUTHORIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    ROUTE_ID_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_CODE_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ADVICE_CODE_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_CHANGED_FIELD_NUMBER: _ClassVar[int]
    authorization_id: str
    time: _timestamp_pb2.Timestamp
    route_id: str
    response_code: str
    merchant_advice_code: str
    credential_changed: bool
    def __init__(self, authorization_id: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., route_id: _Optional[str] = ..., response_code: _Optional[str] = ..., merchant_advice_code: _Optional[str] = ..., credential_changed: _Optional[bool] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("authorization_id", "payment_id", "time", "amount", "card", "merchant", "channel", "initiator", "pos_entry_mode", "stored_credential", "initial_stored_credential", "authentication", "cvv_present", "avs_provided", "customer_in_session", "credential_changed", "ip_country", "candidate_routes", "declines", "advise_retry", "approval_value")
    AUTHORIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CARD_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    INITIATOR_FIELD_NUMBER: _ClassVar[int]
    POS_ENTRY_MODE_FIELD_NUMBER: _ClassVar[int]
    STORED_CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    INITIAL_STORED_CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    AUTHENTICATION_FIELD_NUMBER: _ClassVar[int]
    CVV_PRESENT_FIELD_NUMBER: _ClassVar[int]
    AVS_PROVIDED_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_IN_SESSION_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_CHANGED_FIELD_NUMBER: _ClassVar[int]
    IP_COUNTRY_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_ROUTES_FIELD_NUMBER: _ClassVar[int]
    DECLINES_FIELD_NUMBER: _ClassVar[int]
    ADVISE_RETRY_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_VALUE_FIELD_NUMBER: _ClassVar[int]
    authorization_id: str
    payment_id: str
    time: _timestamp_pb2.Timestamp
    amount: Money
    card: Card
    merchant: Merchant
    channel: Channel
    initiator: Initiator
    pos_entry_mode: PosEntryMode
    stored_credential: StoredCredential
    initial_stored_credential: bool
    authentication: Authentication
    cvv_present: bool
    avs_provided: bool
    customer_in_session: bool
    credential_changed: bool
    ip_country: str
    candidate_routes: _containers.RepeatedScalarFieldContainer[str]
    declines: _containers.RepeatedCompositeFieldContainer[Decline]
    advise_retry: bool
    approval_value: Money
    def __init__(self, authorization_id: _Optional[str] = ..., payment_id: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., amount: _Optional[_Union[Money, _Mapping]] = ..., card: _Optional[_Union[Card, _Mapping]] = ..., merchant: _Optional[_Union[Merchant, _Mapping]] = ..., channel: _Optional[_Union[Channel, str]] = ..., initiator: _Optional[_Union[Initiator, str]] = ..., pos_entry_mode: _Optional[_Union[PosEntryMode, str]] = ..., stored_credential: _Optional[_Union[StoredCredential, str]] = ..., initial_stored_credential: _Optional[bool] = ..., authentication: _Optional[_Union[Authentication, _Mapping]] = ..., cvv_present: _Optional[bool] = ..., avs_provided: _Optional[bool] = ..., customer_in_session: _Optional[bool] = ..., credential_changed: _Optional[bool] = ..., ip_country: _Optional[str] = ..., candidate_routes: _Optional[_Iterable[str]] = ..., declines: _Optional[_Iterable[_Union[Decline, _Mapping]]] = ..., advise_retry: _Optional[bool] = ..., approval_value: _Optional[_Union[Money, _Mapping]] = ...) -> None: ...

class RouteScore(_message.Message):
    __slots__ = ("route_id", "p_approve", "expected_net_value_minor", "approval_cost_minor", "attempt_cost_minor", "expected_fraud_loss_minor")
    ROUTE_ID_FIELD_NUMBER: _ClassVar[int]
    P_APPROVE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_NET_VALUE_MINOR_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_COST_MINOR_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_COST_MINOR_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FRAUD_LOSS_MINOR_FIELD_NUMBER: _ClassVar[int]
    route_id: str
    p_approve: float
    expected_net_value_minor: int
    approval_cost_minor: int
    attempt_cost_minor: int
    expected_fraud_loss_minor: int
    def __init__(self, route_id: _Optional[str] = ..., p_approve: _Optional[float] = ..., expected_net_value_minor: _Optional[int] = ..., approval_cost_minor: _Optional[int] = ..., attempt_cost_minor: _Optional[int] = ..., expected_fraud_loss_minor: _Optional[int] = ...) -> None: ...

class RetryAdvice(_message.Message):
    __slots__ = ("action", "earliest_time", "route_id", "p_approve", "expected_net_value_minor", "rule", "reason", "cancel_recurring")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    EARLIEST_TIME_FIELD_NUMBER: _ClassVar[int]
    ROUTE_ID_FIELD_NUMBER: _ClassVar[int]
    P_APPROVE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_NET_VALUE_MINOR_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CANCEL_RECURRING_FIELD_NUMBER: _ClassVar[int]
    action: RetryAction
    earliest_time: _timestamp_pb2.Timestamp
    route_id: str
    p_approve: float
    expected_net_value_minor: int
    rule: str
    reason: str
    cancel_recurring: bool
    def __init__(self, action: _Optional[_Union[RetryAction, str]] = ..., earliest_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., route_id: _Optional[str] = ..., p_approve: _Optional[float] = ..., expected_net_value_minor: _Optional[int] = ..., rule: _Optional[str] = ..., reason: _Optional[str] = ..., cancel_recurring: _Optional[bool] = ...) -> None: ...

class ModelVersion(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class ScoreResponse(_message.Message):
    __slots__ = ("authorization_id", "chosen_route", "routes", "retry", "models", "fallback", "fallback_reason", "trace_id")
    AUTHORIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_ROUTE_FIELD_NUMBER: _ClassVar[int]
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_REASON_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    authorization_id: str
    chosen_route: str
    routes: _containers.RepeatedCompositeFieldContainer[RouteScore]
    retry: RetryAdvice
    models: _containers.RepeatedCompositeFieldContainer[ModelVersion]
    fallback: bool
    fallback_reason: str
    trace_id: str
    def __init__(self, authorization_id: _Optional[str] = ..., chosen_route: _Optional[str] = ..., routes: _Optional[_Iterable[_Union[RouteScore, _Mapping]]] = ..., retry: _Optional[_Union[RetryAdvice, _Mapping]] = ..., models: _Optional[_Iterable[_Union[ModelVersion, _Mapping]]] = ..., fallback: _Optional[bool] = ..., fallback_reason: _Optional[str] = ..., trace_id: _Optional[str] = ...) -> None: ...

class ScoreBatchRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[ScoreRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[ScoreRequest, _Mapping]]] = ...) -> None: ...

class ScoreResult(_message.Message):
    __slots__ = ("response", "error")
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    response: ScoreResponse
    error: Error
    def __init__(self, response: _Optional[_Union[ScoreResponse, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class ScoreBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ScoreResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ScoreResult, _Mapping]]] = ...) -> None: ...

class ReportOutcomeRequest(_message.Message):
    __slots__ = ("authorization_id", "approved", "response_code", "merchant_advice_code", "approved_amount", "route_id", "time")
    AUTHORIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    APPROVED_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_CODE_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ADVICE_CODE_FIELD_NUMBER: _ClassVar[int]
    APPROVED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    ROUTE_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    authorization_id: str
    approved: bool
    response_code: str
    merchant_advice_code: str
    approved_amount: Money
    route_id: str
    time: _timestamp_pb2.Timestamp
    def __init__(self, authorization_id: _Optional[str] = ..., approved: _Optional[bool] = ..., response_code: _Optional[str] = ..., merchant_advice_code: _Optional[str] = ..., approved_amount: _Optional[_Union[Money, _Mapping]] = ..., route_id: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReportOutcomeResponse(_message.Message):
    __slots__ = ("recorded",)
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    recorded: bool
    def __init__(self, recorded: _Optional[bool] = ...) -> None: ...
